import type { Aedes, Client } from 'aedes'

/** What aedes keeps of the clients it has registered (by client id) and their count. */
interface Registry {
  clients: Record<string, Client | undefined>
  registerClient: (client: Client) => void
  unregisterClient: (client: Client) => void
  persistence: { delWill: (client: { id: string, brokerId: string }) => Promise<unknown> }
  id: string
}

interface ClientInternals {
  closed: boolean
  id: string
  _keepaliveTimer: NodeJS.Timeout | null
}

/**
 * Two holes in aedes' book of connected clients, found by hostile input (test/e2e/hostile-mqtt.test.ts):
 *
 * 1. A connection that closes while its CONNECT is being handled (between authentication and the
 *    CONNACK: the session and the will are read and stored asynchronously) is registered all the same,
 *    after its close: it then stays in `clients` and in `connectedClients` for good, with its keepalive
 *    timer (up to 65535 x 1.5 s) and the will it stored. A client sending a CONNECT and hanging up at
 *    once, with a new client id each time, grows memory and the connection count without bound.
 *    Such a client is not registered; its keepalive timer and stored will are dropped (it was never
 *    acknowledged, so no will is owed).
 * 2. A closing client unregisters whichever client holds its id, also a newer one that took the id
 *    over: that one is then unknown to the registry while connected (a later CONNECT with its id does
 *    not take it over, MQTT-3.1.4-2). Only the client itself is unregistered.
 */
export function repairClientRegistry (broker: Aedes): void {
  const registry = broker as unknown as Registry
  const register = registry.registerClient.bind(broker)
  const unregister = registry.unregisterClient.bind(broker)
  registry.registerClient = (client: Client): void => {
    const internals = client as unknown as ClientInternals
    if (!internals.closed) {
      register(client)
      return
    }
    if (internals._keepaliveTimer !== null) clearTimeout(internals._keepaliveTimer)
    internals._keepaliveTimer = null
    // unless a live client holds the id now: the will stored is then its own
    if (registry.clients[internals.id] === undefined) registry.persistence.delWill({ id: internals.id, brokerId: registry.id }).catch(() => { /* none stored */ })
  }
  registry.unregisterClient = (client: Client): void => {
    if (registry.clients[client.id] === client) unregister(client)
  }
}

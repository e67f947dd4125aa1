import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { waitFor } from '../helpers.js'

/**
 * What the mqtt5-*.test.ts files share: a raw MQTT connection (mqtt-packet on a TCP socket) that sends
 * what a client library will not, and MQTT.js clients closed after each file.
 */

export interface Raw {
  socket: net.Socket
  packets: mqttPacket.Packet[]
  closed: Promise<void>
  isClosed: () => boolean
  send: (packet: mqttPacket.Packet) => void
  /** The next packet of this kind not yet taken (bounded wait). */
  next: <T extends mqttPacket.Packet = mqttPacket.Packet>(cmd: mqttPacket.PacketCmd, what?: string) => Promise<T>
  /** Waits (bounded) for the server to close the connection; resolves to the DISCONNECT it sent first, if any. */
  disconnected: () => Promise<mqttPacket.IDisconnectPacket | undefined>
}

export async function raw (port: number, connect: Partial<mqttPacket.IConnectPacket> = {}, version: 4 | 5 = 5): Promise<{ client: Raw, connack: mqttPacket.IConnackPacket }> {
  const socket = net.connect(port, '127.0.0.1')
  const packets: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: version })
  parser.on('packet', (p: mqttPacket.Packet) => { packets.push(p) })
  socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
  socket.on('error', () => {})
  let closedFlag = false
  const closed = new Promise<void>(resolve => { socket.once('close', () => { closedFlag = true; resolve() }) })
  const taken = new Set<mqttPacket.Packet>()
  const client: Raw = {
    socket,
    packets,
    closed,
    isClosed: () => closedFlag,
    send: packet => { socket.write(mqttPacket.generate(packet, { protocolVersion: version })) },
    next: async <T extends mqttPacket.Packet>(cmd: mqttPacket.PacketCmd, what: string = cmd): Promise<T> => {
      let found: mqttPacket.Packet | undefined
      await waitFor(() => {
        found = packets.find(p => p.cmd === cmd && !taken.has(p))
        return found !== undefined || closedFlag
      }, 5000, what)
      if (found === undefined) throw new Error(`closed before ${what}; got ${packets.map(p => p.cmd).join(', ')}`)
      taken.add(found)
      return found as T
    },
    disconnected: async () => {
      await Promise.race([closed, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('the server kept the connection open')) }, 5000))])
      return packets.find((p): p is mqttPacket.IDisconnectPacket => p.cmd === 'disconnect')
    }
  }
  client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: '', clean: true, keepalive: 0, ...connect } as mqttPacket.IConnectPacket)
  const connack = await client.next<mqttPacket.IConnackPacket>('connack')
  return { client, connack }
}

export class Clients {
  private readonly all: MqttClient[] = []
  private readonly raws: Raw[] = []

  async connect (url: string, options: IClientOptions = {}): Promise<MqttClient> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options })
    this.all.push(client)
    return client
  }

  async raw (port: number, connect: Partial<mqttPacket.IConnectPacket> = {}, version: 4 | 5 = 5): Promise<{ client: Raw, connack: mqttPacket.IConnackPacket }> {
    const r = await raw(port, connect, version)
    this.raws.push(r.client)
    return r
  }

  async close (): Promise<void> {
    await Promise.all(this.all.map(async c => { await c.endAsync(true) }))
    for (const r of this.raws) r.socket.destroy()
  }
}

/** Messages a client receives, with their packets. */
export function collect (client: MqttClient): mqttPacket.IPublishPacket[] {
  const got: mqttPacket.IPublishPacket[] = []
  client.on('message', (_topic, _payload, packet) => { got.push(packet) })
  return got
}

import { Counter, type Registry } from 'prom-client'

/** A refusal by one of the limits of README "Security / Limits"; the label of tetra_limit_refusals_total. */
export type LimitName =
  | 'mqtt_max_packet_size'
  | 'mqtt_max_connections'
  | 'mqtt_max_connections_per_user'
  | 'mqtt_connect_rate'
  | 'mqtt_max_inflight'
  | 'mqtt_max_queued'
  | 'mqtt_max_topic_length'
  | 'mqtt_max_topic_levels'
  | 'http_rate_limit'
  | 'sse_max_streams'
  | 'http_body_limit'

export type SecurityProtocol = 'mqtt' | 'http'

/**
 * Counters of the security front: failed authentications, ACL denials, limit refusals and bad input from
 * clients. Front-ends bump plain numbers on their paths; Prometheus reads them at scrape time.
 */
export class SecurityCounters {
  /** Failed authentications by protocol and reason (missing, invalid, expired). */
  readonly authFailures = new Map<string, number>()
  /** ACL denials by protocol and action (publish, subscribe, read, push, ...). */
  readonly denied = new Map<string, number>()
  /** Limit refusals by limit name. */
  readonly limits = new Map<string, number>()
  /** Malformed input from clients by transport (mqtt_tcp, mqtt_ws, http): logged at debug, counted here. */
  readonly badInput = new Map<string, number>()

  authFailure (protocol: SecurityProtocol, reason: string): void { bump(this.authFailures, protocol + '\0' + reason) }
  deny (protocol: SecurityProtocol, action: string): void { bump(this.denied, protocol + '\0' + action) }
  limit (name: LimitName): void { bump(this.limits, name) }
  bad (transport: string): void { bump(this.badInput, transport) }

  register (registry: Registry): void {
    const series = (name: string, help: string, labels: string[], map: Map<string, number>): void => {
      new Counter({
        name,
        help,
        labelNames: labels,
        registers: [registry],
        collect () {
          this.reset()
          for (const [key, count] of map) {
            const values = key.split('\0')
            this.inc(Object.fromEntries(labels.map((l, i) => [l, values[i] ?? ''])), count)
          }
        }
      })
    }
    series('tetra_auth_failures_total', 'Failed authentications, by protocol and reason', ['protocol', 'reason'], this.authFailures)
    series('tetra_acl_denied_total', 'Operations the ACL denied, by protocol and action', ['protocol', 'action'], this.denied)
    series('tetra_limit_refusals_total', 'Connections, packets, requests or messages refused or dropped by a limit', ['limit'], this.limits)
    series('tetra_bad_input_total', 'Malformed input from clients, by transport', ['transport'], this.badInput)
  }
}

function bump (map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

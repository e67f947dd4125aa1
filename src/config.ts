import { readFileSync } from 'node:fs'
import { FSYNC_POLICIES, type FsyncPolicy } from '../engines/storage/storage.js'

/**
 * The one configuration schema. Every setting has a flag, an env variable and a key in the JSON config
 * file; precedence is flags > env > file > defaults. README's configuration table follows this list.
 */
export interface Config {
  host: string
  mqttPort: number
  httpPort: number
  dataDir: string
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  fsync: FsyncPolicy
  fsyncIntervalMs: number
  httpBodyLimit: number
  shutdownTimeoutMs: number
  sseHeartbeatMs: number
  mqttSysIntervalMs: number
  storeMaxMemory: number
  storeEviction: 'lru' | 'none'
  storeMaxValue: number
  storeWatchBacklog: number
  streamAutocreate: boolean
  streamMaxMessageBytes: number
  streamDedupWindowMs: number
  queueAutocreate: boolean
  authFile: string
  allowAnonymous: boolean
  tlsCert: string
  tlsKey: string
  tlsCa: string
  mqttsPort: number
  mqttDenyDisconnect: boolean
  mqttMaxPacketSize: number
  mqttMaxConnections: number
  mqttMaxConnectionsPerUser: number
  mqttConnectRate: number
  mqttMaxInflight: number
  mqttMaxQueued: number
  mqttMaxWaiting: number
  mqttMaxTopicLength: number
  mqttMaxTopicLevels: number
  mqttKeepAliveMin: number
  mqttKeepAliveMax: number
  mqttTopicAliasMax: number
  mqttReceiveMaximum: number
  mqttMaxQos: number
  mqttRetainAvailable: boolean
  httpRateLimit: number
  sseMaxStreams: number
  corsOrigin: string[]
  dashboard: 'on' | 'readonly' | 'off'
}

type Kind = 'string' | 'path' | 'list' | 'port' | 'int' | 'bytes' | 'enum' | 'bool'

export interface Setting {
  key: keyof Config
  flag: string
  env: string
  kind: Kind
  default: string | number | boolean | string[]
  allowed?: readonly string[]
  min?: number
  /** kind int: the largest value allowed. */
  max?: number
  description: string
}

export const SETTINGS: readonly Setting[] = [
  { key: 'host', flag: '--host', env: 'TETRA_HOST', kind: 'string', default: '127.0.0.1', description: 'Address every listener binds to (0.0.0.0 for all interfaces).' },
  { key: 'mqttPort', flag: '--mqtt-port', env: 'TETRA_MQTT_PORT', kind: 'port', default: 1883, description: 'MQTT over TCP port; 0 picks a free port.' },
  { key: 'httpPort', flag: '--http-port', env: 'TETRA_HTTP_PORT', kind: 'port', default: 8080, description: 'HTTP port: REST, SSE, the /mqtt WebSocket, /metrics, /docs, the dashboard; 0 picks a free port.' },
  { key: 'dataDir', flag: '--data-dir', env: 'TETRA_DATA_DIR', kind: 'string', default: './data', description: 'Directory of the LevelDB database (one process per directory).' },
  { key: 'logLevel', flag: '--log-level', env: 'TETRA_LOG_LEVEL', kind: 'enum', default: 'info', allowed: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], description: 'Log level (pino JSON on stdout).' },
  { key: 'fsync', flag: '--fsync', env: 'TETRA_FSYNC', kind: 'enum', default: 'interval', allowed: FSYNC_POLICIES, description: 'When durable writes reach the disk: always (fsync every batch), interval (at most every --fsync-interval ms), never (OS decides).' },
  { key: 'fsyncIntervalMs', flag: '--fsync-interval', env: 'TETRA_FSYNC_INTERVAL', kind: 'int', default: 100, min: 1, description: 'With --fsync interval: the longest time in ms between fsyncs while writes are pending.' },
  { key: 'httpBodyLimit', flag: '--http-body-limit', env: 'TETRA_HTTP_BODY_LIMIT', kind: 'bytes', default: 16 * 1024 * 1024, min: 1024, description: 'Largest HTTP request body accepted (bytes, or e.g. 16mb); larger gets 413.' },
  { key: 'shutdownTimeoutMs', flag: '--shutdown-timeout', env: 'TETRA_SHUTDOWN_TIMEOUT', kind: 'int', default: 10_000, min: 100, description: 'Longest graceful shutdown in ms before the process exits anyway.' },
  { key: 'sseHeartbeatMs', flag: '--sse-heartbeat', env: 'TETRA_SSE_HEARTBEAT', kind: 'int', default: 15_000, min: 100, description: 'Interval in ms of the heartbeat comment on every SSE stream.' },
  { key: 'mqttSysIntervalMs', flag: '--mqtt-sys-interval', env: 'TETRA_MQTT_SYS_INTERVAL', kind: 'int', default: 10_000, min: 0, description: 'Interval in ms of the broker statistics published, retained, under $SYS/broker/ (Mosquitto\'s topics); 0 = none.' },
  { key: 'storeMaxMemory', flag: '--store-max-memory', env: 'TETRA_STORE_MAX_MEMORY', kind: 'bytes', default: 0, min: 0, description: 'Cap on the store\'s memory (bytes, or e.g. 512mb; keys + values + about 80 bytes per key); 0 = no cap.' },
  { key: 'storeEviction', flag: '--store-eviction', env: 'TETRA_STORE_EVICTION', kind: 'enum', default: 'lru', allowed: ['lru', 'none'], description: 'At the store memory cap: lru evicts the least recently used keys; none refuses writes with 507.' },
  { key: 'storeMaxValue', flag: '--store-max-value', env: 'TETRA_STORE_MAX_VALUE', kind: 'bytes', default: 1024 * 1024, min: 1, description: 'Largest store value (bytes, or e.g. 1mb); larger gets 413.' },
  { key: 'storeWatchBacklog', flag: '--store-watch-backlog', env: 'TETRA_STORE_WATCH_BACKLOG', kind: 'int', default: 10_000, min: 1, description: 'Store change events kept so a watcher that reconnects with Last-Event-ID misses nothing.' },
  { key: 'streamAutocreate', flag: '--stream-autocreate', env: 'TETRA_STREAM_AUTOCREATE', kind: 'bool', default: true, description: 'Appending to a stream that does not exist creates it (false: 404 until it is created with PUT).' },
  { key: 'streamMaxMessageBytes', flag: '--stream-max-message-size', env: 'TETRA_STREAM_MAX_MESSAGE_SIZE', kind: 'bytes', default: 1024 * 1024, min: 1, description: 'Largest stream message (payload + key + headers); larger gets 413 (captured ones are dropped and counted).' },
  { key: 'streamDedupWindowMs', flag: '--stream-dedup-window', env: 'TETRA_STREAM_DEDUP_WINDOW', kind: 'int', default: 120_000, min: 0, description: 'Default dedup window in ms of new streams: a dedupId seen within it returns the original offset.' },
  { key: 'queueAutocreate', flag: '--queue-autocreate', env: 'TETRA_QUEUE_AUTOCREATE', kind: 'bool', default: true, description: 'Pushing to a queue that does not exist creates it with default settings (false: 404 until it is created with PUT).' },
  // security: identity, ACL, TLS (README "Security")
  { key: 'authFile', flag: '--auth-file', env: 'TETRA_AUTH_FILE', kind: 'path', default: '', description: 'JSON file of users, tokens, roles and rules (tetra passwd / tetra token write it); reloaded on SIGHUP and when it changes. Empty: no auth (anonymous access, loopback only).' },
  { key: 'allowAnonymous', flag: '--allow-anonymous', env: 'TETRA_ALLOW_ANONYMOUS', kind: 'bool', default: false, description: 'Without --auth-file, allow anonymous access on a non-loopback --host too (otherwise the broker refuses to start there).' },
  { key: 'tlsCert', flag: '--tls-cert', env: 'TETRA_TLS_CERT', kind: 'path', default: '', description: 'PEM certificate (chain): turns on MQTT over TLS on --mqtts-port and HTTPS/WSS on the HTTP port; reloaded on SIGHUP.' },
  { key: 'tlsKey', flag: '--tls-key', env: 'TETRA_TLS_KEY', kind: 'path', default: '', description: 'PEM private key of --tls-cert.' },
  { key: 'tlsCa', flag: '--tls-ca', env: 'TETRA_TLS_CA', kind: 'path', default: '', description: 'PEM CA bundle for client certificates: a verified certificate\'s CN is a user of the auth file (mTLS).' },
  { key: 'mqttsPort', flag: '--mqtts-port', env: 'TETRA_MQTTS_PORT', kind: 'port', default: 8883, description: 'MQTT over TLS port, listened on when --tls-cert is set; 0 picks a free port.' },
  { key: 'mqttDenyDisconnect', flag: '--mqtt-deny-disconnect', env: 'TETRA_MQTT_DENY_DISCONNECT', kind: 'bool', default: false, description: 'A PUBLISH the ACL denies disconnects the client (default: dropped, counted and acknowledged).' },
  { key: 'mqttMaxPacketSize', flag: '--mqtt-max-packet-size', env: 'TETRA_MQTT_MAX_PACKET_SIZE', kind: 'bytes', default: 16 * 1024 * 1024, min: 64, description: 'Largest MQTT packet accepted (bytes, or e.g. 1mb); a larger one closes the connection.' },
  { key: 'mqttMaxConnections', flag: '--mqtt-max-connections', env: 'TETRA_MQTT_MAX_CONNECTIONS', kind: 'int', default: 100_000, min: 0, description: 'Most MQTT connections at once over all transports; 0 = no cap.' },
  { key: 'mqttMaxConnectionsPerUser', flag: '--mqtt-max-connections-per-user', env: 'TETRA_MQTT_MAX_CONNECTIONS_PER_USER', kind: 'int', default: 1000, min: 0, description: 'Most MQTT connections at once of one user or token; 0 = no cap.' },
  { key: 'mqttConnectRate', flag: '--mqtt-connect-rate', env: 'TETRA_MQTT_CONNECT_RATE', kind: 'int', default: 500, min: 0, description: 'New MQTT connections accepted per second from one IP address (burst of the same size); 0 = no cap.' },
  { key: 'mqttMaxInflight', flag: '--mqtt-max-inflight', env: 'TETRA_MQTT_MAX_INFLIGHT', kind: 'int', default: 1000, min: 1, description: 'Most QoS 1/2 messages in flight per MQTT client (sent and not yet acknowledged, or QoS 2 received and not yet released).' },
  { key: 'mqttMaxQueued', flag: '--mqtt-max-queued', env: 'TETRA_MQTT_MAX_QUEUED', kind: 'int', default: 1000, min: 0, description: 'Most QoS 1/2 messages queued for one offline persistent session (Mosquitto\'s max_queued_messages): the oldest is dropped and counted; 0 = no cap.' },
  { key: 'mqttMaxWaiting', flag: '--mqtt-max-waiting', env: 'TETRA_MQTT_MAX_WAITING', kind: 'int', default: 0, min: 0, description: 'Most QoS 1/2 messages waiting in memory for a free in-flight slot of a connected clean-session client; past it the oldest waiting one is dropped and counted (a slow reader loses messages instead of growing the broker\'s memory). 0 = no cap, nothing dropped.' },
  { key: 'mqttMaxTopicLength', flag: '--mqtt-max-topic-length', env: 'TETRA_MQTT_MAX_TOPIC_LENGTH', kind: 'int', default: 4096, min: 1, description: 'Longest topic name or filter in bytes (MQTT, HTTP publish and SSE filters).' },
  { key: 'mqttMaxTopicLevels', flag: '--mqtt-max-topic-levels', env: 'TETRA_MQTT_MAX_TOPIC_LEVELS', kind: 'int', default: 128, min: 1, description: 'Most levels (parts between /) in a topic name or filter.' },
  { key: 'mqttKeepAliveMin', flag: '--mqtt-keepalive-min', env: 'TETRA_MQTT_KEEPALIVE_MIN', kind: 'int', default: 0, min: 0, max: 65535, description: 'Shortest MQTT keep alive in seconds: an MQTT 5 client asking for less (or 0) is told this one in CONNACK (Server Keep Alive); 0 = no minimum.' },
  { key: 'mqttKeepAliveMax', flag: '--mqtt-keepalive-max', env: 'TETRA_MQTT_KEEPALIVE_MAX', kind: 'int', default: 65535, min: 1, max: 65535, description: 'Longest MQTT keep alive in seconds: an MQTT 5 client asking for more (or 0) is told this one (Server Keep Alive); a 3.1.1 client asking for more is refused (CONNACK 0x02). 65535 = no maximum.' },
  { key: 'mqttTopicAliasMax', flag: '--mqtt-topic-alias-max', env: 'TETRA_MQTT_TOPIC_ALIAS_MAX', kind: 'int', default: 10, min: 0, max: 65535, description: 'Topic aliases an MQTT 5 client may set on its publishes (CONNACK Topic Alias Maximum); 0 = none.' },
  { key: 'mqttReceiveMaximum', flag: '--mqtt-receive-maximum', env: 'TETRA_MQTT_RECEIVE_MAXIMUM', kind: 'int', default: 1000, min: 1, max: 65535, description: 'QoS 1/2 publishes an MQTT 5 client may have sent and not yet had acknowledged (CONNACK Receive Maximum); one more gets DISCONNECT 0x93.' },
  { key: 'mqttMaxQos', flag: '--mqtt-max-qos', env: 'TETRA_MQTT_MAX_QOS', kind: 'int', default: 2, min: 0, max: 2, description: 'Highest MQTT QoS accepted and granted (CONNACK Maximum QoS): subscriptions are granted at most this; a PUBLISH or will above it is refused (MQTT 5: 0x9B; 3.1.1: the connection closes).' },
  { key: 'mqttRetainAvailable', flag: '--mqtt-retain-available', env: 'TETRA_MQTT_RETAIN_AVAILABLE', kind: 'bool', default: true, description: 'Whether retained MQTT messages are accepted (CONNACK Retain Available); false: a retained PUBLISH or will is refused (MQTT 5: 0x9A; 3.1.1: the connection closes).' },
  { key: 'httpRateLimit', flag: '--http-rate-limit', env: 'TETRA_HTTP_RATE_LIMIT', kind: 'int', default: 0, min: 0, description: 'HTTP requests per second per principal (burst of the same size); more get 429 with Retry-After; 0 = no cap.' },
  { key: 'sseMaxStreams', flag: '--sse-max-streams', env: 'TETRA_SSE_MAX_STREAMS', kind: 'int', default: 100, min: 1, description: 'Most SSE streams open at once per principal; more get 429.' },
  { key: 'corsOrigin', flag: '--cors-origin', env: 'TETRA_CORS_ORIGIN', kind: 'list', default: [], description: 'Origins (comma-separated, or * for any) allowed to call the HTTP API from a browser; none: same-origin only.' },
  { key: 'dashboard', flag: '--dashboard', env: 'TETRA_DASHBOARD', kind: 'enum', default: 'on', allowed: ['on', 'readonly', 'off'], description: 'The web console at /: on, readonly (the page shows no write action and the API refuses the page\'s writes), off (no page).' }
]

export class ConfigError extends Error {}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 }

/** "512mb", "1.5gb", "1024" -> bytes. */
export function parseBytes (text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  if (m === null) return undefined
  const unit = BYTE_UNITS[m[2].toLowerCase()]
  if (unit === undefined) return undefined
  return Math.floor(Number(m[1]) * unit)
}

function convert (setting: Setting, raw: unknown, source: string): string | number | boolean | string[] {
  const where = `${setting.flag} (${source})`
  if (setting.kind === 'bool' && typeof raw === 'boolean') return raw
  if (setting.kind === 'list' && Array.isArray(raw) && raw.every(v => typeof v === 'string')) return raw.map(v => v.trim()).filter(v => v.length > 0)
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw : undefined
  if (text === undefined) throw new ConfigError(`${where}: expected a ${setting.kind === 'string' || setting.kind === 'enum' ? 'string' : 'number'}, got ${JSON.stringify(raw)}`)
  switch (setting.kind) {
    case 'string':
      if (text.length === 0) throw new ConfigError(`${where}: must not be empty`)
      return text
    case 'path':
      return text
    case 'list':
      return text.split(',').map(v => v.trim()).filter(v => v.length > 0)
    case 'enum':
      if (!(setting.allowed ?? []).includes(text)) throw new ConfigError(`${where}: "${text}" is not allowed; use one of ${(setting.allowed ?? []).join(', ')}`)
      return text
    case 'port': {
      const n = Number(text)
      if (!/^\d+$/.test(text.trim()) || n > 65535) throw new ConfigError(`${where}: "${text}" is not a port; use an integer from 0 to 65535 (0 = any free port)`)
      return n
    }
    case 'int': {
      const n = Number(text)
      if (!/^-?\d+$/.test(text.trim()) || n < (setting.min ?? 0)) throw new ConfigError(`${where}: "${text}" is not allowed; use an integer >= ${setting.min ?? 0}`)
      if (setting.max !== undefined && n > setting.max) throw new ConfigError(`${where}: "${text}" is not allowed; use an integer from ${setting.min ?? 0} to ${setting.max}`)
      return n
    }
    case 'bool':
      if (/^(true|1|yes|on)$/i.test(text.trim())) return true
      if (/^(false|0|no|off)$/i.test(text.trim())) return false
      throw new ConfigError(`${where}: "${text}" is not allowed; use true or false`)
    case 'bytes': {
      const n = parseBytes(text)
      if (n === undefined || n < (setting.min ?? 0)) throw new ConfigError(`${where}: "${text}" is not allowed; use a byte count >= ${setting.min ?? 0} such as 1048576, 512kb, 64mb or 1gb`)
      return n
    }
  }
}

export interface ParsedArgs { flags: Map<string, string>, help: boolean, version: boolean, configFile?: string }

/** Splits argv into --flag value / --flag=value pairs; unknown flags are an error. */
export function parseArgs (argv: readonly string[]): ParsedArgs {
  const known = new Set(SETTINGS.map(s => s.flag))
  const boolFlags = new Set(SETTINGS.filter(s => s.kind === 'bool').map(s => s.flag))
  const flags = new Map<string, string>()
  let help = false
  let version = false
  let configFile: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') { help = true; continue }
    if (arg === '--version' || arg === '-v') { version = true; continue }
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    if (flag !== '--config' && !known.has(flag)) throw new ConfigError(`unknown option ${arg}; see tetra --help`)
    let value: string | undefined
    if (eq > 0) value = arg.slice(eq + 1)
    else if (boolFlags.has(flag) && (argv[i + 1] === undefined || argv[i + 1].startsWith('--'))) value = 'true' // a bare --allow-anonymous
    else {
      value = argv[i + 1]
      i++
    }
    if (value === undefined) throw new ConfigError(`${flag} needs a value; see tetra --help`)
    if (flag === '--config') configFile = value
    else flags.set(flag, value)
  }
  return { flags, help, version, configFile }
}

function readConfigFile (path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`--config: cannot read ${path}: ${(err as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`--config: ${path} is not valid JSON: ${(err as Error).message}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`--config: ${path} must hold a JSON object`)
  const keys = new Set<string>(SETTINGS.map(s => s.key))
  for (const k of Object.keys(parsed)) {
    if (!keys.has(k)) throw new ConfigError(`--config: ${path} has an unknown setting "${k}"; allowed: ${[...keys].join(', ')}`)
  }
  return parsed as Record<string, unknown>
}

/** Resolves the configuration from argv, the environment and an optional JSON file; throws ConfigError. */
export function loadConfig (argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { config: Config, help: boolean, version: boolean } {
  const args = parseArgs(argv)
  const fileName = args.configFile ?? env.TETRA_CONFIG
  const file = fileName !== undefined ? readConfigFile(fileName) : {}
  const out: Record<string, string | number | boolean | string[]> = {}
  for (const s of SETTINGS) {
    const fromFlag = args.flags.get(s.flag)
    const fromEnv = env[s.env]
    if (fromFlag !== undefined) out[s.key] = convert(s, fromFlag, 'flag')
    else if (fromEnv !== undefined && fromEnv !== '') out[s.key] = convert(s, fromEnv, `env ${s.env}`)
    else if (file[s.key] !== undefined) out[s.key] = convert(s, file[s.key], `config file key ${s.key}`)
    else out[s.key] = s.default
  }
  return { config: out as unknown as Config, help: args.help, version: args.version }
}

export function helpText (version: string): string {
  const lines = [
    `tetra ${version}: one broker, four engines (MQTT pub/sub, store, queues, streams)`,
    '',
    'Usage: tetra [options]',
    '',
    'Options (flag, environment variable, default):'
  ]
  for (const s of SETTINGS) {
    lines.push(`  ${s.flag} <${s.allowed !== undefined ? s.allowed.join('|') : s.kind}>`)
    lines.push(`      ${s.description}`)
    lines.push(`      env ${s.env}, default ${Array.isArray(s.default) ? (s.default.join(',') || 'none') : s.default === '' ? 'none' : String(s.default)}`)
  }
  lines.push('  --config <file.json>', '      JSON file with any of the settings above by key (e.g. {"mqttPort": 1884}); env TETRA_CONFIG')
  lines.push('  --help, --version')
  return lines.join('\n')
}

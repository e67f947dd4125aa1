#!/usr/bin/env -S node --max-semi-space-size=32
import { ConfigError, helpText, loadConfig, type Config } from './config.js'
import { createLogger } from './logger.js'
import { checkSafeDefaults } from './safe-defaults.js'
import { packageVersion } from './version.js'
import { TetraError } from '../engines/errors.js'
import { AuthFileError } from '../engines/auth/errors.js'
import { COMMANDS_HELP, isCommand, runCommand } from './commands/index.js'
import { clientCommandsHelp, isClientCommand } from './commands/client/help.js'
import { relaunchWithV8Flags } from './v8-flags.js'

async function main (): Promise<void> {
  // `tetra passwd ...`, `tetra token ...`: commands that edit the auth file, without the broker's settings
  const command = process.argv[2]
  if (isCommand(command)) {
    process.exitCode = await runCommand(command, process.argv.slice(3))
    return
  }
  // `tetra pub ...`, `tetra get ...`: commands that talk to a running broker through tetra/client
  if (isClientCommand(command)) {
    const { runClientCommand } = await import('./commands/client/run.js')
    process.exitCode = await runClientCommand(command, process.argv.slice(3))
    return
  }
  let config: Config
  try {
    // `tetra serve [flags]`, or the flags alone as before
    const loaded = loadConfig(process.argv.slice(command === 'serve' ? 3 : 2))
    if (loaded.help) {
      process.stdout.write('usage: tetra [serve] [flags]   (starts the broker)\n\n' + helpText(packageVersion()) + '\n\n' + COMMANDS_HELP + '\n\n' + clientCommandsHelp() + '\n')
      return
    }
    if (loaded.version) {
      process.stdout.write(`tetra ${packageVersion()}\n`)
      return
    }
    config = loaded.config
    // before the data dir is opened: an open broker on the network is refused (Mosquitto 2's rule)
    const verdict = checkSafeDefaults(config)
    if (!verdict.start) {
      process.stderr.write(`tetra: refusing to start: ${verdict.message}\n`)
      process.exit(2)
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tetra: invalid configuration: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }

  // started without the V8 flags the broker's speed relies on (`node dist/src/cli.js`): the broker runs in a
  // child process that has them; this one passes signals on and exits with the child's code
  const relaunched = relaunchWithV8Flags()
  if (relaunched !== undefined) {
    process.exitCode = await relaunched
    return
  }

  const logger = createLogger(config.logLevel)
  const safeDefaults = checkSafeDefaults(config)
  if (safeDefaults.start && safeDefaults.warning !== undefined) logger.warn({ event: 'anonymous_access', host: config.host }, safeDefaults.warning)
  let broker
  try {
    // loaded here, not at the top: `tetra passwd` and `tetra token` start without the broker's modules
    const { startBroker } = await import('./server.js')
    broker = await startBroker(config, logger)
  } catch (err) {
    if (err instanceof AuthFileError) {
      logger.fatal({ file: err.file }, `invalid auth file: ${err.message}`)
      logger.flush()
      process.stderr.write(`tetra: invalid auth file: ${err.message.replace(/^auth file /, '')}\n`)
      process.exit(2)
    }
    if (err instanceof ConfigError) {
      // a setting whose file is missing or wrong (a TLS certificate): reported as the flags are
      logger.fatal(`invalid configuration: ${err.message}`)
      logger.flush()
      process.stderr.write(`tetra: invalid configuration: ${err.message}\n`)
      process.exit(2)
    }
    const message = err instanceof TetraError ? err.message : (err as Error).message
    logger.fatal({ err: err instanceof TetraError ? undefined : err }, `cannot start: ${message}`)
    process.stderr.write(`tetra: cannot start: ${message}\n`)
    process.exit(1)
  }
  const { mqtt, httpAddress, mqtts } = broker
  const [http, ws] = mqtts === undefined ? ['http', 'ws'] : ['https', 'wss']
  logger.info({
    event: 'listening',
    mqtt: `${mqtt.host}:${mqtt.port}`,
    http: `${httpAddress.host}:${httpAddress.port}`,
    tls: mqtts !== undefined,
    ...(mqtts !== undefined ? { mqtts: `${mqtts.host}:${mqtts.port}`, mqttsPort: mqtts.port } : {}),
    mqttPort: mqtt.port,
    httpPort: httpAddress.port,
    dataDir: config.dataDir,
    fsync: config.fsync
  }, `Tetra listening: mqtt://${mqtt.host}:${mqtt.port}, ${mqtts !== undefined ? `mqtts://${mqtts.host}:${mqtts.port}, ` : ''}${http}://${httpAddress.host}:${httpAddress.port} (MQTT over WebSocket at ${ws}://${httpAddress.host}:${httpAddress.port}/mqtt), data in ${config.dataDir}`)

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    const deadline = setTimeout(() => {
      logger.error(`graceful shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting`)
      process.exit(1)
    }, config.shutdownTimeoutMs)
    deadline.unref()
    broker.close().then(() => {
      logger.info('stopped')
      logger.flush()
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'error during shutdown')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  // SIGHUP: reload what can change under a running broker (TLS certificates, the auth file); each part logs
  // what it refused, and a malformed auth file leaves the previous one in force
  process.on('SIGHUP', () => {
    if (stopping) return
    logger.info({ signal: 'SIGHUP' }, 'reloading')
    broker.reload().then(() => {
      logger.info({ signal: 'SIGHUP', authGeneration: broker.engines.auth.generation }, 'reloaded')
    }, (err: unknown) => {
      if (err instanceof AuthFileError) logger.error({ file: err.file }, `reload failed, the previous auth file stays in force: ${err.message}`)
      else logger.error({ err }, 'reload failed')
    })
  })
}

void main()

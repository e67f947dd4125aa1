import { spawn } from 'node:child_process'
import { constants } from 'node:os'

/**
 * The V8 setting the broker's throughput figures rely on: a larger young generation means fewer scavenges
 * per message under load (MQTT fan-in measured about 30% faster once; a later run on a busy machine showed no
 * difference beyond its noise, at ~35 MB more peak memory). V8 sizes the young generation when the heap is set
 * up, so `v8.setFlagsFromString` at run time does not change it (measured: new space stays at 32 MB); the flag
 * has to be on the command line or in NODE_OPTIONS.
 */
export const V8_FLAGS = ['--max-semi-space-size=32']

/** Set in the re-spawned broker: it never re-spawns again. */
const GUARD = 'TETRA_V8_RESPAWNED'

/** Whether `flag` (e.g. `--max-semi-space-size=32`) or another value of it is already given to this process. */
export function hasV8Flag (flag: string, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const name = flag.split('=')[0]
  const names = [name, '--' + name.slice(2).replace(/-/g, '_')]
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)]
  return given.some(arg => names.some(n => arg === n || arg.startsWith(n + '=')))
}

/**
 * When this process runs without the V8 flags (started as `node dist/src/cli.js`), starts the broker again
 * in a child process with them and returns the child's exit code once it exits (its signal, re-raised, when it
 * was killed by one). The child shares stdin, stdout and stderr; SIGTERM, SIGINT and SIGHUP are passed on, so
 * a drain on SIGTERM and a reload on SIGHUP work as before. If this process dies without passing anything on
 * (SIGKILL), the child kills itself at once, as if it had been killed too, so no broker is left holding the
 * data directory. Returns undefined when nothing needs to be done (the flags are given, or this is the child).
 */
export function relaunchWithV8Flags (): Promise<number> | undefined {
  if (process.env[GUARD] === '1') {
    // the child: die with the parent (an IPC channel closes when the parent dies, whatever the signal)
    if (process.channel !== undefined) {
      process.on('disconnect', () => { process.kill(process.pid, 'SIGKILL') })
      process.channel.unref()
    }
    return undefined
  }
  const missing = V8_FLAGS.filter(flag => !hasV8Flag(flag, process.execArgv, process.env.NODE_OPTIONS))
  if (missing.length === 0) return undefined
  const child = spawn(process.execPath, [...process.execArgv, ...missing, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [GUARD]: '1' }
  })
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
  const forward = (signal: NodeJS.Signals): void => { child.kill(signal) }
  for (const signal of signals) process.on(signal, forward)
  return new Promise<number>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`tetra: cannot start: ${err.message}\n`)
      resolve(1)
    })
    child.on('exit', (code, signal) => {
      for (const s of signals) process.off(s, forward)
      if (signal !== null) {
        // die of the same signal, so whoever started us sees what happened to the broker
        process.kill(process.pid, signal)
        resolve(128 + (constants.signals[signal] ?? 0))
        return
      }
      resolve(code ?? 1)
    })
  })
}

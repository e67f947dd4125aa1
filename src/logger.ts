import { pino, type Logger } from 'pino'

/** pino JSON on stdout; human-readable only when stdout is a terminal (a person is watching). */
export function createLogger (level: string): Logger {
  if (process.stdout.isTTY === true && level !== 'silent') {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } })
  }
  return pino({ level })
}

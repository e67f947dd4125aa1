import type { FastifyInstance } from 'fastify'

/**
 * For bench server scripts: listen on an ephemeral port of 127.0.0.1, print the
 * `{"event":"listening","httpPort":..}` line that startListening waits for, and close on SIGTERM.
 */
export async function announceListening (app: FastifyInstance): Promise<void> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(JSON.stringify({ event: 'listening', httpPort }) + '\n')
  process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}

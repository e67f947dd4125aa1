/**
 * The baseline: a plain aedes 1.2 broker with its defaults (in-memory persistence), on a node:net server
 * with Nagle off and, for the WebSocket scenario, behind a plain `ws` server. It prints one JSON line
 * `{"event":"listening","mqttPort":..,"wsPort":..}` and runs until SIGTERM.
 */
import net, { type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

async function main (): Promise<void> {
  const broker = await Aedes.createBroker()
  const tcp = net.createServer({ noDelay: true }, socket => { broker.handle(socket) })
  tcp.listen(0, '127.0.0.1')
  await once(tcp, 'listening')
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await once(wss, 'listening')
  wss.on('connection', ws => {
    const stream = createWebSocketStream(ws)
    stream.on('error', () => { stream.destroy() })
    broker.handle(stream)
  })
  process.stdout.write(JSON.stringify({
    event: 'listening',
    mqttPort: (tcp.address() as AddressInfo).port,
    wsPort: (wss.address() as AddressInfo).port
  }) + '\n')
  process.on('SIGTERM', () => {
    tcp.close()
    wss.close()
    broker.close(() => { process.exit(0) })
  })
}

void main()

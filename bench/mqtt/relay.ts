/**
 * The latency floor: not a broker, just the least an MQTT hop can do. It accepts CONNECT and SUBSCRIBE
 * (QoS 0, no matching: every subscriber gets every PUBLISH) and writes each PUBLISH it parses straight to
 * the subscribers. Measured next to the brokers, it shows how much of a latency figure is the machine and
 * the load generator rather than the broker. Prints `{"event":"listening","mqttPort":..}`.
 */
import net, { type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import mqttPacket, { type Packet } from 'mqtt-packet'

const CONNACK = mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false })

async function main (): Promise<void> {
  const subscribers = new Set<Socket>()
  const server = net.createServer({ noDelay: true }, socket => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') socket.write(CONNACK)
      else if (packet.cmd === 'subscribe') {
        subscribers.add(socket)
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map(() => 0) }))
      } else if (packet.cmd === 'publish') {
        const bytes = mqttPacket.generate({ cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 0, retain: false, dup: false })
        for (const s of subscribers) if (s !== socket) s.write(bytes)
      } else if (packet.cmd === 'pingreq') socket.write(mqttPacket.generate({ cmd: 'pingresp' }))
    })
    parser.on('error', () => { socket.destroy() })
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.on('error', () => { socket.destroy() })
    socket.on('close', () => { subscribers.delete(socket) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  process.stdout.write(JSON.stringify({ event: 'listening', mqttPort: (server.address() as AddressInfo).port }) + '\n')
  process.on('SIGTERM', () => { process.exit(0) })
}

void main()

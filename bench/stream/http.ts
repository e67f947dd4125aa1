import { Agent, request } from 'node:http'

/** A keep-alive HTTP/1.1 client with a fixed number of sockets, for the load generators. */
export function makeAgent (connections: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: connections })
}

export async function httpCall (agent: Agent, base: string, method: string, path: string, body?: Buffer | string): Promise<{ status: number, body: Buffer }> {
  const url = new URL(path, base)
  return await new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers: body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

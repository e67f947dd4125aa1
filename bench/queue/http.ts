import http from 'node:http'

/** One keep-alive HTTP connection for JSON requests (a load generator's "connection"). */
export class JsonConnection {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

  constructor (private readonly host: string, private readonly port: number) {}

  async request<T> (method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return await new Promise((resolve, reject) => {
      const req = http.request({
        host: this.host,
        port: this.port,
        method,
        path,
        agent: this.agent,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length }
      }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          try {
            resolve({ status: res.statusCode ?? 0, body: (text === '' ? {} : JSON.parse(text)) as T })
          } catch (err) {
            reject(err as Error)
          }
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(payload)
    })
  }

  close (): void { this.agent.destroy() }
}

export function parseUrl (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

import net from 'node:net'

const HEAD_END = Buffer.from('\r\n\r\n')

interface Waiting { resolve: (r: { status: number, text: string }) => void, reject: (err: Error) => void }

/**
 * One keep-alive HTTP/1.1 connection for JSON requests (a load generator's "connection"), one request at
 * a time. Written on a plain socket, as autocannon does, rather than with node:http: its client costs
 * several times the CPU per request, and the load generator shares the machine's cores with the broker
 * it measures. Answers must carry a Content-Length (fastify's do); anything else is an error.
 */
export class JsonConnection {
  private readonly socket: net.Socket
  private buffered: Buffer = Buffer.alloc(0)
  private waiting: Waiting | null = null
  private readonly connected: Promise<void>
  private failure: Error | null = null

  constructor (private readonly host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true })
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
    this.socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    this.socket.on('error', err => { this.fail(err) })
    this.socket.on('close', () => { this.fail(new Error('connection closed')) })
  }

  /** Sends a request whose body is JSON text already (a load generator builds its bodies as text). */
  async requestText<T> (method: string, path: string, body?: string): Promise<{ status: number, body: T }> {
    await this.connected
    if (this.failure !== null) throw this.failure
    if (this.waiting !== null) throw new Error('one request at a time on a JsonConnection')
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\n` +
      (body === undefined ? '\r\n' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`)
    const answer = new Promise<{ status: number, text: string }>((resolve, reject) => { this.waiting = { resolve, reject } })
    this.socket.write(body === undefined ? head : head + body)
    const { status, text } = await answer
    return { status, body: (text === '' ? {} : JSON.parse(text)) as T }
  }

  async request<T> (method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
    return await this.requestText<T>(method, path, body === undefined ? undefined : JSON.stringify(body))
  }

  close (): void { this.socket.destroy() }

  private onData (chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const headEnd = this.buffered.indexOf(HEAD_END)
    if (headEnd < 0) return
    const head = this.buffered.toString('latin1', 0, headEnd)
    const status = Number(head.slice(9, 12))
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)
    if (length === null) {
      this.fail(new Error(`answer without content-length: ${head.split('\r\n')[0]}`))
      return
    }
    const bodyStart = headEnd + HEAD_END.length
    const bodyEnd = bodyStart + Number(length[1])
    if (this.buffered.length < bodyEnd) return
    const text = this.buffered.toString('utf8', bodyStart, bodyEnd)
    this.buffered = this.buffered.subarray(bodyEnd)
    const waiting = this.waiting
    this.waiting = null
    waiting?.resolve({ status, text })
  }

  private fail (err: Error): void {
    if (this.failure === null) this.failure = err
    const waiting = this.waiting
    this.waiting = null
    waiting?.reject(err)
  }
}

export function parseUrl (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

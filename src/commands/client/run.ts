import { createInterface } from 'node:readline'
import { ConnectionError, NotFoundError, Tetra, TetraError, TimeoutError, type Message, type PublishOptions, type StreamMessage } from '../../client/node.js'
import { commandHelp, type ClientCommandName } from './help.js'
import { numberValue, parseClientArgs, UsageError, value, type ParsedArgs } from './args.js'
import { createOutput, readable, wirePayload, type Output } from './output.js'

interface Context { tetra: Tetra, args: ParsedArgs, out: Output, name: ClientCommandName }
type Command = (ctx: Context) => Promise<number>

/** Messages per request when a command reads them from stdin (the API's batch limit). */
const BATCH = 1000

function need (ctx: Context, count: number, what: string): string[] {
  const p = ctx.args.positional
  if (p.length < count) throw new UsageError(`${what} missing`)
  return p
}

/** A value typed on the command line: JSON when it is a JSON text (so `tetra set n 5` is the number 5), else text. */
function typedValue (text: string): unknown {
  try { return JSON.parse(text) } catch { return text }
}

async function readStdin (): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** The lines of stdin, in batches of up to BATCH (empty lines skipped). */
async function * stdinBatches (): AsyncGenerator<string[]> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  let batch: string[] = []
  for await (const line of lines) {
    if (line === '') continue
    batch.push(line)
    if (batch.length === BATCH) { yield batch; batch = [] }
  }
  if (batch.length > 0) yield batch
}

/** Sends stdin's lines in batches with a progress line; returns how many were sent. */
async function batched (ctx: Context, verb: string, send: (lines: string[]) => Promise<void>): Promise<number> {
  const started = Date.now()
  let sent = 0
  let shown = 0
  for await (const lines of stdinBatches()) {
    await send(lines)
    sent += lines.length
    const now = Date.now()
    if (now - shown >= 200) {
      shown = now
      ctx.out.progress(`${verb} ${sent.toLocaleString('en')} lines (${Math.round(sent / Math.max(0.001, (now - started) / 1000)).toLocaleString('en')}/s)`)
    }
  }
  ctx.out.endProgress()
  return sent
}

function messageLine (ctx: Context, m: Message): void {
  const { payload, encoding: _encoding, ...rest } = m
  ctx.out.line(`${m.topic} ${readable(payload)}`, { ...rest, ...wirePayload(payload) })
}

function streamLine (ctx: Context, m: StreamMessage): void {
  const { payload, encoding: _encoding, ...rest } = m
  ctx.out.line(`${m.offset}\t${new Date(m.timestamp).toISOString()}\t${m.key !== undefined ? `${m.key}\t` : ''}${m.topic !== undefined ? `${m.topic}\t` : ''}${readable(payload)}`, { ...rest, ...wirePayload(payload) })
}

/** --count N: stop after N items (undefined: never). */
function countOf (ctx: Context): number | undefined {
  const n = numberValue(ctx.args, '--count')
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new UsageError('--count takes a positive integer')
  return n
}

function fromOf (text: string | undefined): number | 'start' | 'end' | undefined {
  if (text === undefined || text === 'start' || text === 'end') return text
  if (!/^\d+$/.test(text)) throw new UsageError(`--from takes an offset, start or end, not ${JSON.stringify(text)}`)
  return Number(text)
}

/** Ends on Ctrl-C / SIGTERM: the signal of a following command. */
function untilInterrupted (): AbortSignal {
  const controller = new AbortController()
  const stop = (): void => { controller.abort(new Error('interrupted')) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return controller.signal
}

const COMMANDS: Record<ClientCommandName, Command> = {
  async pub (ctx) {
    const [topic, message] = need(ctx, 2, 'TOPIC and MESSAGE')
    const qos = numberValue(ctx.args, '-q', '--qos') ?? 0
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new UsageError('-q takes 0, 1 or 2')
    const options: PublishOptions = { qos, retain: ctx.args.switches.has('-r') || ctx.args.switches.has('--retain') }
    const props = ctx.args.values.get('--user-property')
    if (props !== undefined) {
      const userProperties: Record<string, string[]> = {}
      for (const p of props) {
        const eq = p.indexOf('=')
        if (eq < 1) throw new UsageError(`--user-property takes NAME=VALUE, not ${JSON.stringify(p)}`)
        ;(userProperties[p.slice(0, eq)] ??= []).push(p.slice(eq + 1))
      }
      options.userProperties = userProperties
    }
    const contentType = value(ctx.args, '--content-type')
    if (contentType !== undefined) options.contentType = contentType
    const responseTopic = value(ctx.args, '--response-topic')
    if (responseTopic !== undefined) options.responseTopic = responseTopic
    const expiry = numberValue(ctx.args, '--expiry')
    if (expiry !== undefined) options.messageExpiry = expiry
    if (message === '-') {
      const count = await batched(ctx, 'published', async lines => {
        // one publish per line, a few in flight: HTTP publish takes one message per call
        for (let i = 0; i < lines.length; i += 16) await Promise.all(lines.slice(i, i + 16).map(async line => await ctx.tetra.pubsub.publish(topic, line, options)))
      })
      ctx.out.line(`published ${count} messages to ${topic}`, { topic, published: count })
      return 0
    }
    const answer = await ctx.tetra.pubsub.publish(topic, message, options)
    ctx.out.line(`published ${answer.bytes} bytes to ${answer.topic}`, answer)
    return 0
  },

  async sub (ctx) {
    const filters = need(ctx, 1, 'FILTER')
    const count = countOf(ctx)
    const mqttUrl = value(ctx.args, '--mqtt')
    const signal = untilInterrupted()
    let seen = 0
    try {
      for await (const m of ctx.tetra.pubsub.subscribe(filters, {
        signal,
        retained: !ctx.args.switches.has('--no-retained'),
        ...(mqttUrl !== undefined ? { mqtt: { url: mqttUrl, ...(ctx.tetra.http.options.username !== undefined ? { username: ctx.tetra.http.options.username, password: ctx.tetra.http.options.password } : {}) } } : {})
      })) {
        messageLine(ctx, m)
        if (count !== undefined && ++seen >= count) break
      }
    } catch (err) { if (!signal.aborted) throw err }
    return 0
  },

  async get (ctx) {
    const [key] = need(ctx, 1, 'KEY')
    const entry = await ctx.tetra.store.getEntry(key)
    if (entry === undefined) {
      process.stderr.write(`tetra get: key ${JSON.stringify(key)} not found\n`)
      return 1
    }
    const { value: v, ...rest } = entry
    const wire = wirePayload(v)
    ctx.out.line(readable(v), { ...rest, value: wire.payload, ...(wire.encoding !== undefined ? { encoding: wire.encoding } : {}) })
    return 0
  },

  async set (ctx) {
    const [key, text] = need(ctx, 2, 'KEY and VALUE')
    let v: unknown
    if (text === '-') {
      const bytes = await readStdin()
      v = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    } else v = typedValue(text)
    const etag = await ctx.tetra.store.set(key, v, {
      ...(numberValue(ctx.args, '--ttl') !== undefined ? { ttl: numberValue(ctx.args, '--ttl') } : {}),
      ifAbsent: ctx.args.switches.has('--nx'),
      ...(value(ctx.args, '--if-match') !== undefined ? { ifMatch: value(ctx.args, '--if-match') } : {})
    })
    if (etag === null) {
      process.stderr.write(`tetra set: not set: ${ctx.args.switches.has('--nx') ? `key ${JSON.stringify(key)} exists` : `key ${JSON.stringify(key)} is missing or has changed`}\n`)
      return 1
    }
    ctx.out.line(`OK ${etag}`, { key, etag })
    return 0
  },

  async del (ctx) {
    const [key] = need(ctx, 1, 'KEY')
    const ifMatch = value(ctx.args, '--if-match')
    const deleted = await ctx.tetra.store.delete(key, ifMatch !== undefined ? { ifMatch } : {})
    if (!deleted) {
      process.stderr.write(`tetra del: key ${JSON.stringify(key)} ${ifMatch !== undefined ? 'is missing or has changed' : 'not found'}\n`)
      return 1
    }
    ctx.out.line('deleted', { key, deleted: true })
    return 0
  },

  async incr (ctx) {
    const [key] = need(ctx, 1, 'KEY')
    const by = numberValue(ctx.args, '--by') ?? 1
    if (!Number.isInteger(by)) throw new UsageError('--by takes an integer')
    const v = await ctx.tetra.store.incr(key, by)
    ctx.out.line(String(v), { key, value: v })
    return 0
  },

  async keys (ctx) {
    const prefix = ctx.args.positional[0] ?? ''
    for await (const info of ctx.tetra.store.scan({ prefix })) {
      ctx.out.line(`${info.key}\t${info.size} B\t${info.contentType}${info.ttl !== null ? `\tttl ${info.ttl.toFixed(1)} s` : ''}`, info)
    }
    return 0
  },

  async push (ctx) {
    const [name, message] = need(ctx, 2, 'QUEUE and MESSAGE')
    const queue = ctx.tetra.queue(name)
    const opts = {
      ...(numberValue(ctx.args, '--delay') !== undefined ? { delay: numberValue(ctx.args, '--delay') } : {}),
      ...(numberValue(ctx.args, '--priority') !== undefined ? { priority: numberValue(ctx.args, '--priority') } : {})
    }
    if (message === '-') {
      const count = await batched(ctx, 'pushed', async lines => { await queue.pushMany(lines.map(line => ({ payload: typedValue(line), ...opts }))) })
      ctx.out.line(`pushed ${count} messages to ${name}`, { queue: name, pushed: count })
      return 0
    }
    const dedupId = value(ctx.args, '--dedup-id')
    const id = await queue.push(typedValue(message), { ...opts, ...(dedupId !== undefined ? { dedupId } : {}) })
    ctx.out.line(`pushed ${id}`, { queue: name, id })
    return 0
  },

  async pop (ctx) {
    const [name] = need(ctx, 1, 'QUEUE')
    const queue = ctx.tetra.queue(name)
    const messages = await queue.receive({ max: countOf(ctx) ?? 1, wait: numberValue(ctx.args, '--wait') ?? 0 })
    if (messages.length === 0) {
      process.stderr.write(`tetra pop: no ready message in ${name}\n`)
      return 1
    }
    const ack = ctx.args.switches.has('--ack')
    if (ack) await queue.ack(messages.map(m => m.receipt))
    for (const m of messages) {
      const { payload, encoding: _encoding, ...rest } = m
      ctx.out.line(ack ? readable(payload) : `${readable(payload)}\t(receipt ${m.receipt}; lease until ${new Date(m.leaseExpiresAt).toISOString()})`, { ...rest, ...wirePayload(payload), ...(ack ? { acked: true } : {}) })
    }
    return 0
  },

  async dlq (ctx) {
    const [name] = need(ctx, 1, 'QUEUE')
    const queue = ctx.tetra.queue(name)
    if (ctx.args.switches.has('--redrive')) {
      const { redriven } = await queue.redrive()
      ctx.out.line(`redriven ${redriven} messages`, { queue: name, redriven })
      return 0
    }
    for await (const d of queue.deadLetters()) {
      const { payload, encoding: _encoding, ...rest } = d
      ctx.out.line(`${d.id}\t${d.deliveries} deliveries\t${d.reason}${d.lastError !== undefined ? ` (${d.lastError})` : ''}\t${readable(payload)}`, { ...rest, ...wirePayload(payload) })
    }
    return 0
  },

  async append (ctx) {
    const [name, message] = need(ctx, 2, 'STREAM and MESSAGE')
    const stream = ctx.tetra.stream(name)
    const key = value(ctx.args, '--key')
    if (message === '-') {
      const count = await batched(ctx, 'appended', async lines => { await stream.appendMany(lines.map(line => ({ payload: typedValue(line), ...(key !== undefined ? { key } : {}) }))) })
      ctx.out.line(`appended ${count} messages to ${name}`, { stream: name, appended: count })
      return 0
    }
    const dedupId = value(ctx.args, '--dedup-id')
    const offset = await stream.append(typedValue(message), { ...(key !== undefined ? { key } : {}), ...(dedupId !== undefined ? { dedupId } : {}) })
    ctx.out.line(`offset ${offset}`, { stream: name, offset })
    return 0
  },

  async read (ctx) {
    const [name] = need(ctx, 1, 'STREAM')
    const from = fromOf(value(ctx.args, '--from'))
    const time = value(ctx.args, '--time')
    if (from !== undefined && time !== undefined) throw new UsageError('give either --from or --time, not both')
    const limit = numberValue(ctx.args, '--limit')
    let seen = 0
    if (limit !== undefined && limit < 1) return 0
    for await (const m of ctx.tetra.stream(name).read({ ...(time !== undefined ? { time: /^\d+$/.test(time) ? Number(time) : time } : { from: from ?? 'start' }), pageSize: Math.min(1000, limit ?? 1000) })) {
      streamLine(ctx, m)
      if (limit !== undefined && ++seen >= limit) break
    }
    return 0
  },

  async tail (ctx) {
    const [target] = need(ctx, 1, 'STREAM or FILTER')
    const count = countOf(ctx)
    const signal = untilInterrupted()
    let isStream = /^[A-Za-z0-9._-]{1,200}$/.test(target)
    if (isStream) {
      try { await ctx.tetra.stream(target).info() } catch (err) { if (err instanceof NotFoundError) isStream = false; else throw err }
    }
    let seen = 0
    try {
      if (isStream) {
        for await (const m of ctx.tetra.stream(target).tail({ from: fromOf(value(ctx.args, '--from')) ?? 'end', signal })) {
          streamLine(ctx, m)
          if (count !== undefined && ++seen >= count) break
        }
      } else {
        for await (const m of ctx.tetra.pubsub.subscribe(target, { signal, retained: false })) {
          messageLine(ctx, m)
          if (count !== undefined && ++seen >= count) break
        }
      }
    } catch (err) { if (!signal.aborted) throw err }
    return 0
  },

  async stats (ctx) {
    const stats = await ctx.tetra.stats()
    if (ctx.out.json) { ctx.out.line('', stats); return 0 }
    const lines: string[] = []
    const walk = (prefix: string, v: unknown): void => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) { for (const [k, x] of Object.entries(v)) walk(prefix === '' ? k : `${prefix}.${k}`, x) } else if (!Array.isArray(v)) lines.push(`${prefix.padEnd(40)} ${typeof v === 'number' ? v.toLocaleString('en') : String(v)}`)
      else lines.push(`${prefix.padEnd(40)} [${v.length}]`)
    }
    walk('', stats)
    process.stdout.write(lines.join('\n') + '\n')
    return 0
  }
}

/** Runs a client command; returns the exit status (0 ok, 1 failed or nothing found, 2 bad usage). */
export async function runClientCommand (name: ClientCommandName, argv: string[]): Promise<number> {
  let args: ParsedArgs
  try {
    args = parseClientArgs(argv)
  } catch (err) {
    process.stderr.write(`tetra ${name}: ${(err as Error).message}\n\n${commandHelp(name)}`)
    return 2
  }
  if (args.switches.has('--help') || args.switches.has('-h')) {
    process.stdout.write(commandHelp(name))
    return 0
  }
  // `tetra sub x | head -1`: a closed pipe ends the command quietly
  process.stdout.on('error', err => { if ((err as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0) })
  const env = process.env
  const tetra = new Tetra({
    url: value(args, '--url') ?? env.TETRA_URL ?? 'http://127.0.0.1:8080',
    token: value(args, '--token') ?? env.TETRA_TOKEN,
    username: value(args, '--user') ?? env.TETRA_USER,
    password: value(args, '--password') ?? env.TETRA_PASSWORD,
    ...(numberValue(args, '--timeout') !== undefined ? { timeout: numberValue(args, '--timeout') } : {}),
    retries: 2
  })
  const out = createOutput(args.switches.has('--json'))
  try {
    return await COMMANDS[name]({ tetra, args, out, name })
  } catch (err) {
    out.endProgress()
    if (err instanceof UsageError) {
      process.stderr.write(`tetra ${name}: ${err.message}\n\n${commandHelp(name)}`)
      return 2
    }
    if (err instanceof TetraError) {
      process.stderr.write(`tetra ${name}: ${err.detail} (${err.status} ${err.title})\n`)
      return 1
    }
    if (err instanceof ConnectionError || err instanceof TimeoutError) {
      process.stderr.write(`tetra ${name}: ${err.message}\n`)
      return 1
    }
    process.stderr.write(`tetra ${name}: ${(err as Error).message}\n`)
    return 1
  }
}

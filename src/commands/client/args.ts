/** Parsing the arguments of the client commands: positionals, `--flag value` options and switches. */

const VALUE_FLAGS = new Set(['--url', '--token', '--user', '--password', '--timeout', '-q', '--qos', '--user-property', '--content-type', '--response-topic', '--expiry',
  '--count', '--mqtt', '--ttl', '--if-match', '--by', '--delay', '--priority', '--dedup-id', '--wait', '--key', '--from', '--time', '--limit'])
const SWITCHES = new Set(['-r', '--retain', '--json', '--nx', '--ack', '--redrive', '--no-retained', '--help', '-h'])

export class UsageError extends Error {}

export interface ParsedArgs {
  positional: string[]
  values: Map<string, string[]>
  switches: Set<string>
}

export function parseClientArgs (args: string[]): ParsedArgs {
  const out: ParsedArgs = { positional: [], values: new Map(), switches: new Set() }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') { out.positional.push(...args.slice(i + 1)); break }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const name = eq > 0 ? arg.slice(0, eq) : arg
    if (VALUE_FLAGS.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i]
      if (value === undefined) throw new UsageError(`${name} needs a value`)
      out.values.set(name, [...(out.values.get(name) ?? []), value])
    } else if (SWITCHES.has(arg)) out.switches.add(arg)
    else if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) throw new UsageError(`unknown option ${arg}`)
    else out.positional.push(arg)
  }
  return out
}

export function value (args: ParsedArgs, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = args.values.get(name)
    if (v !== undefined) return v[v.length - 1]
  }
  return undefined
}

export function numberValue (args: ParsedArgs, ...names: string[]): number | undefined {
  const text = value(args, ...names)
  if (text === undefined) return undefined
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${names[0]} takes a number, not ${JSON.stringify(text)}`)
  return n
}

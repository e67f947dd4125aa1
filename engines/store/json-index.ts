import { SortedKeys } from './sorted-keys.js'

export interface IndexDefinition {
  /** Keys under this prefix are indexed ('' = every key). */
  prefix: string
  /** Dotted path of the field inside a JSON object value, e.g. "user.country". */
  field: string
}

/**
 * A JSON-field index: field value -> the sorted keys whose JSON value holds it. Only scalar fields are
 * indexed (string, number, boolean, null), each under its text form (the string itself, 42, true, null),
 * so ?value=42 finds both 42 and "42". Keys also map back to their indexed value so a delete or an
 * overwrite removes the old entry without parsing the old value again.
 */
export class JsonIndex {
  readonly path: readonly string[]
  private readonly byValue = new Map<string, SortedKeys>()
  private readonly byKey = new Map<string, string>()
  /** False while keys that existed when the index was created are still being read. */
  ready = false

  constructor (readonly name: string, readonly definition: IndexDefinition) {
    this.path = definition.field.split('.')
  }

  get indexedKeys (): number { return this.byKey.size }
  get distinctValues (): number { return this.byValue.size }

  covers (key: string): boolean { return key.startsWith(this.definition.prefix) }

  /** The indexed text of a parsed value, or undefined when the field is missing or not a scalar. */
  extract (document: unknown): string | undefined {
    let node: unknown = document
    for (const segment of this.path) {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined
      node = (node as Record<string, unknown>)[segment]
    }
    if (node === null) return 'null'
    switch (typeof node) {
      case 'string': return node
      case 'number': return String(node)
      case 'boolean': return node ? 'true' : 'false'
      default: return undefined
    }
  }

  /** Points key at the field of its new value (undefined: key no longer indexed). */
  update (key: string, document: unknown): void {
    const text = document === undefined ? undefined : this.extract(document)
    const old = this.byKey.get(key)
    if (old === text) return
    if (old !== undefined) this.removeEntry(key, old)
    if (text !== undefined) {
      this.byKey.set(key, text)
      let keys = this.byValue.get(text)
      if (keys === undefined) {
        keys = new SortedKeys()
        this.byValue.set(text, keys)
      }
      keys.insert(key)
    }
  }

  remove (key: string): void {
    const old = this.byKey.get(key)
    if (old !== undefined) this.removeEntry(key, old)
  }

  private removeEntry (key: string, text: string): void {
    this.byKey.delete(key)
    const keys = this.byValue.get(text)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) this.byValue.delete(text)
  }

  /** The keys holding value, in key order, strictly after `after` when given. */
  keysWith (value: string, after: string | undefined): Generator<string> | undefined {
    const keys = this.byValue.get(value)
    return keys?.iterate('', after)
  }
}

/** Parses a value as a JSON object when it can be one (first non-blank byte `{`); undefined otherwise. */
export function parseJsonObject (bytes: Uint8Array): unknown {
  let i = 0
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++
  if (bytes[i] !== 0x7b) return undefined
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown
  } catch {
    return undefined
  }
}

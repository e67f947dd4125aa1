/**
 * Binary key building blocks. LevelDB orders keys bytewise, so numbers are big-endian and names are
 * length-prefixed: a range read over "name + offset" is then a contiguous, ordered scan.
 */

/** 8-byte big-endian unsigned integer (safe integers only: offsets and timestamps stay below 2^53). */
export function u64 (n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

export function readU64 (b: Buffer, at = 0): number {
  return Number(b.readBigUInt64BE(at))
}

/** A name as 2-byte length + UTF-8 bytes, so "a" never sorts inside the range of "ab". */
export function name (s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8')
  const b = Buffer.allocUnsafe(2 + bytes.length)
  b.writeUInt16BE(bytes.length, 0)
  bytes.copy(b, 2)
  return b
}

export function readName (b: Buffer, at = 0): { value: string, next: number } {
  const len = b.readUInt16BE(at)
  return { value: b.toString('utf8', at + 2, at + 2 + len), next: at + 2 + len }
}

export function concat (...parts: Buffer[]): Buffer {
  return Buffer.concat(parts)
}

/** The smallest key greater than every key that starts with prefix (for exclusive upper bounds). */
export function prefixEnd (prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i]++
      return end.subarray(0, i + 1)
    }
  }
  // all 0xff: no finite upper bound; a longer key of 0xff still sorts after
  return Buffer.concat([prefix, Buffer.from([0xff])])
}

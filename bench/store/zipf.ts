/**
 * Key ranks drawn from a Zipfian distribution, as YCSB's default request distribution draws them
 * (Gray et al., "Quickly generating billion-record synthetic databases"; theta 0.99), with the ranks
 * scattered over the keyspace by a hash as YCSB's scrambled generator does, so the popular keys are
 * not neighbours in memory.
 */
export class ScrambledZipf {
  private readonly zetan: number
  private readonly alpha: number
  private readonly eta: number
  private readonly half: number

  constructor (private readonly items: number, theta = 0.99, private readonly random: () => number = Math.random) {
    let zetan = 0
    for (let i = 1; i <= items; i++) zetan += 1 / Math.pow(i, theta)
    const zeta2 = 1 + 1 / Math.pow(2, theta)
    this.zetan = zetan
    this.alpha = 1 / (1 - theta)
    this.eta = (1 - Math.pow(2 / items, 1 - theta)) / (1 - zeta2 / zetan)
    this.half = 1 + Math.pow(0.5, theta)
  }

  /** A key number in 0 .. items - 1. */
  next (): number {
    const u = this.random()
    const uz = u * this.zetan
    let rank: number
    if (uz < 1) rank = 0
    else if (uz < this.half) rank = 1
    else rank = Math.min(this.items - 1, Math.floor(this.items * Math.pow(this.eta * u - this.eta + 1, this.alpha)))
    return scramble(rank) % this.items
  }
}

/** FNV-1a over the rank's four bytes: a fixed shuffle of ranks over key numbers. */
function scramble (rank: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < 4; i++) {
    h ^= (rank >>> (8 * i)) & 0xff
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

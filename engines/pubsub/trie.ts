/**
 * Topic filters in a trie over their levels, each filter's subscribers at its last level's node. `+` and
 * `#` are ordinary child keys; a match walks, for each level of the topic, the child of that name, the `+`
 * child and the `#` child (which takes the rest, none included: `a/#` matches `a`). A topic starting with
 * `$` is not matched by a filter whose first level is a wildcard (MQTT 3.1.1 §4.7.2, 5.0 §4.7.2).
 *
 * Generic over the subscriber (an owner object) and what the subscription carries (its options): one
 * owner has at most one entry per filter.
 */

class TrieNode<O, V> {
  readonly children = new Map<string, TrieNode<O, V>>()
  /** The subscribers whose filter ends here. */
  subscribers: Map<O, V> | null = null
  /** Number of subscribers in this node and below (a node with none is pruned). */
  count = 0
}

export class SubscriptionTrie<O, V> {
  private readonly root = new TrieNode<O, V>()

  get size (): number { return this.root.count }

  /** Adds or replaces an owner's entry for a filter; true when it was new. */
  add (filter: string, owner: O, value: V): boolean {
    const levels = filter.split('/')
    let node = this.root
    const path: Array<TrieNode<O, V>> = [node]
    for (const level of levels) {
      let child = node.children.get(level)
      if (child === undefined) {
        child = new TrieNode<O, V>()
        node.children.set(level, child)
      }
      node = child
      path.push(node)
    }
    node.subscribers ??= new Map()
    const existed = node.subscribers.has(owner)
    node.subscribers.set(owner, value)
    if (!existed) for (const n of path) n.count++
    return !existed
  }

  /** Removes an owner's entry for a filter; true when there was one. */
  remove (filter: string, owner: O): boolean {
    const levels = filter.split('/')
    const path: Array<TrieNode<O, V>> = [this.root]
    let node: TrieNode<O, V> | undefined = this.root
    for (const level of levels) {
      node = node.children.get(level)
      if (node === undefined) return false
      path.push(node)
    }
    if (node.subscribers === null || !node.subscribers.delete(owner)) return false
    if (node.subscribers.size === 0) node.subscribers = null
    for (const n of path) n.count--
    // prune the branch that holds nobody any more
    for (let i = path.length - 1; i > 0; i--) {
      if (path[i].count > 0) break
      path[i - 1].children.delete(levels[i - 1])
    }
    return true
  }

  /** Calls visit for every (owner, value, filter's node) whose filter matches the topic. */
  match (topic: string, visit: (owner: O, value: V) => void): void {
    if (this.root.count === 0) return
    const levels = topic.split('/')
    this.walk(this.root, levels, 0, topic.charCodeAt(0) === 36, visit)
  }

  private walk (node: TrieNode<O, V>, levels: string[], i: number, dollar: boolean, visit: (owner: O, value: V) => void): void {
    // the wildcards of the first level do not match a `$` topic
    const wild = !(dollar && i === 0)
    if (wild) {
      const hash = node.children.get('#')
      if (hash?.subscribers != null) for (const [owner, value] of hash.subscribers) visit(owner, value)
    }
    if (i === levels.length) {
      if (node.subscribers !== null) for (const [owner, value] of node.subscribers) visit(owner, value)
      return
    }
    const exact = node.children.get(levels[i])
    if (exact !== undefined) this.walk(exact, levels, i + 1, dollar, visit)
    if (wild) {
      const plus = node.children.get('+')
      if (plus !== undefined) this.walk(plus, levels, i + 1, dollar, visit)
    }
  }
}

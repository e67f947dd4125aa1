export { Store, EVICTION_POLICIES, MAX_KEY_BYTES, INDEX_NAME_PATTERN, ENTRY_OVERHEAD_BYTES, entryCost, validateKey, encodeCursor, decodeCursor } from './store.js'
export type { EvictionPolicy, StoreOptions, SetOptions, StoredValue, KeyInfo, MsetEntry, StoreEvent, IndexInfo, Page, StoreStats } from './store.js'
export type { IndexDefinition } from './json-index.js'
export type { ChangeKind } from './change-log.js'

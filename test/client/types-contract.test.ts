import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers.js'
import type { DeadLetter, GroupInfo, KeyInfo, Message, QueueInfo, QueueMessage, ReceiptResult, StreamInfo, StreamMessage } from '../../src/client/index.js'

/**
 * The client's types cannot drift from the server: each answer type of tetra/client lists its fields here,
 * checked by the compiler to be exactly the type's keys (a field added to the type and not here, or the
 * reverse, is a type error), and this test checks the list against the OpenAPI document's schema of the
 * answer: the same fields, and every field the document requires.
 */

type Missing<T, K extends readonly string[]> = Exclude<keyof T, K[number]>
/** The field names of T, all of them: a missing one makes the call a type error. */
function fields<T> () {
  return <const K extends ReadonlyArray<keyof T & string>>(...names: [Missing<T, K>] extends [never] ? K : never): readonly string[] => names
}

interface Schema { type?: string | string[], properties?: Record<string, Schema>, required?: string[], items?: Schema }
let broker: TestBroker
let doc: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>> }

beforeAll(async () => {
  broker = await startTestBroker()
  doc = await (await fetch(broker.url + '/openapi.json')).json() as typeof doc
})
afterAll(async () => { await broker?.stop() })

const answer = (method: string, path: string): Schema => doc.paths[path][method].responses['200'].content!['application/json'].schema

const CHECKS: Array<{ type: string, names: readonly string[], schema: () => Schema }> = [
  { type: 'KeyInfo', names: fields<KeyInfo>()('key', 'size', 'contentType', 'etag', 'ttl'), schema: () => answer('get', '/v1/store/keys').properties!.keys.items! },
  { type: 'QueueInfo', names: fields<QueueInfo>()('name', 'createdAt', 'settings', 'stats'), schema: () => answer('get', '/v1/queues/{name}') },
  { type: 'QueueInfo.stats', names: fields<QueueInfo['stats']>()('ready', 'leased', 'delayed', 'dead', 'pushed', 'acked', 'deadLettered', 'expired', 'waiting'), schema: () => answer('get', '/v1/queues/{name}').properties!.stats },
  {
    type: 'QueueMessage',
    names: fields<QueueMessage>()('id', 'receipt', 'payload', 'encoding', 'headers', 'topic', 'priority', 'deliveries', 'enqueuedAt', 'firstDeliveredAt', 'leaseExpiresAt'),
    schema: () => answer('post', '/v1/queues/{name}/receive').properties!.messages.items!
  },
  { type: 'ReceiptResult', names: fields<ReceiptResult>()('receipt', 'id', 'status', 'at'), schema: () => answer('post', '/v1/queues/{name}/ack').properties!.results.items! },
  {
    type: 'DeadLetter',
    names: fields<DeadLetter>()('id', 'payload', 'encoding', 'headers', 'topic', 'priority', 'deliveries', 'enqueuedAt', 'firstDeliveredAt', 'deadAt', 'reason', 'lastError'),
    schema: () => answer('get', '/v1/queues/{name}/dead').properties!.messages.items!
  },
  { type: 'StreamInfo', names: fields<StreamInfo>()('name', 'settings', 'createdAt', 'firstOffset', 'lastOffset', 'nextOffset', 'count', 'bytes', 'groups'), schema: () => answer('get', '/v1/streams/{name}') },
  {
    type: 'StreamMessage',
    names: fields<StreamMessage>()('offset', 'timestamp', 'topic', 'qos', 'retain', 'payloadFormat', 'contentType', 'responseTopic', 'correlationData', 'correlationEncoding', 'userProperties', 'userPropertyList', 'key', 'headers', 'payload', 'encoding', 'deliveries'),
    schema: () => answer('get', '/v1/streams/{name}/messages').properties!.messages.items!
  },
  {
    type: 'StreamMessage (group receive)',
    names: fields<StreamMessage>()('offset', 'timestamp', 'topic', 'qos', 'retain', 'payloadFormat', 'contentType', 'responseTopic', 'correlationData', 'correlationEncoding', 'userProperties', 'userPropertyList', 'key', 'headers', 'payload', 'encoding', 'deliveries'),
    schema: () => answer('post', '/v1/streams/{name}/groups/{group}/receive').properties!.messages.items!
  },
  { type: 'GroupInfo', names: fields<GroupInfo>()('name', 'committed', 'pending', 'lag', 'dead', 'delivered', 'ackWait', 'maxDeliveries', 'maxPending', 'createdAt', 'readers'), schema: () => answer('get', '/v1/streams/{name}/groups/{group}') },
  {
    type: 'Message (pubsub)',
    names: fields<Message>()('topic', 'payload', 'encoding', 'qos', 'retain', 'payloadFormat', 'contentType', 'responseTopic', 'correlationData', 'correlationEncoding', 'userProperties', 'userPropertyList', 'messageExpiry'),
    schema: () => answer('get', '/v1/pubsub/retained').properties!.messages.items!
  }
]

describe('client types against the OpenAPI document', () => {
  for (const check of CHECKS) {
    it(`${check.type} has exactly the fields of the document's answer`, () => {
      const schema = check.schema()
      expect([...check.names].sort()).toEqual(Object.keys(schema.properties ?? {}).sort())
      for (const required of schema.required ?? []) expect(check.names).toContain(required)
    })
  }
})

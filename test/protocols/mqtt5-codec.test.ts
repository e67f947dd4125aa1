import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { PacketReader } from '../../protocols/mqtt/reader.js'
import { createParser } from '../../protocols/mqtt/parser.js'
import { encodePublish, type PublishFields } from '../../protocols/mqtt/encode.js'
import type { BusMessage } from '../../engines/pubsub/types.js'

/**
 * The front-end's own codec held to mqtt-packet's: the packet reader (reader.ts, which parses the hot
 * packets itself) gives the packets mqtt-packet gives, however the bytes are split into chunks; the PUBLISH
 * encoder (encode.ts) writes bytes mqtt-packet reads back as the same packet.
 */

const topic = fc.string({ unit: fc.constantFrom('a', 'b', '/', 'é', '0', 'x'), minLength: 1, maxLength: 20 })
const payload = fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b))
const id = fc.integer({ min: 1, max: 65535 })
const userProperties = fc.dictionary(fc.string({ unit: fc.constantFrom('k', 'l', 'm'), minLength: 1, maxLength: 3 }), fc.string({ maxLength: 4 }), { maxKeys: 3 })

function packetArb (version: 4 | 5): fc.Arbitrary<mqttPacket.Packet> {
  const publish = fc.record({ topic, payload, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), messageId: id, withProps: fc.boolean(), userProperties })
    .map(p => ({
      cmd: 'publish',
      topic: p.topic,
      payload: p.payload,
      qos: p.qos,
      retain: p.retain,
      dup: p.qos > 0 && p.dup,
      ...(p.qos > 0 ? { messageId: p.messageId } : {}),
      ...(version === 5 && p.withProps ? { properties: { userProperties: p.userProperties, contentType: 'text/plain' } } : {})
    }) as mqttPacket.Packet)
  const ack = fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId: id }).map(p => p as mqttPacket.Packet)
  const subscribe = fc.record({ messageId: id, t: topic }).map(p => ({ cmd: 'subscribe', messageId: p.messageId, subscriptions: [{ topic: p.t, qos: 1 }] }) as mqttPacket.Packet)
  return fc.oneof(publish, ack, subscribe, fc.constant({ cmd: 'pingreq' } as mqttPacket.Packet))
}

/** The fields both parsers must agree on. */
function essence (p: mqttPacket.Packet): unknown {
  const { cmd } = p
  const out: Record<string, unknown> = { cmd }
  if ('messageId' in p && p.messageId !== undefined) out.messageId = p.messageId
  if (p.cmd === 'publish') Object.assign(out, { topic: p.topic, payload: Buffer.from(p.payload).toString('hex'), qos: p.qos, retain: p.retain, dup: p.dup, properties: p.properties ?? {} })
  if (p.cmd === 'subscribe') out.subscriptions = p.subscriptions
  return out
}

describe('the front-end\'s codec', () => {
  for (const version of [4, 5] as const) {
    it(`reads what mqtt-packet reads, split at any points (MQTT ${version === 5 ? '5' : '3.1.1'})`, () => {
      fc.assert(fc.property(fc.array(packetArb(version), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (packets, cuts) => {
        const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'c', clean: true, keepalive: 0 })
        const body = Buffer.concat(packets.map(p => mqttPacket.generate(p, { protocolVersion: version })))
        const bytes = Buffer.concat([connect, body])
        const expected: unknown[] = []
        const reference = mqttPacket.parser({ protocolVersion: version })
        reference.on('packet', (p: mqttPacket.Packet) => { if (p.cmd !== 'connect') expected.push(essence(p)) })
        reference.parse(bytes)
        const got: unknown[] = []
        const parser = createParser(1 << 20)
        const reader = new PacketReader(parser, {
          packet: p => { if (p.cmd === 'connect') reader.version = version; else got.push(essence(p)) },
          malformed: reason => { throw new Error(reason) },
          error: err => { throw err }
        })
        parser.on('packet', (p: mqttPacket.Packet) => { if (p.cmd === 'connect') reader.version = version; else got.push(essence(p)) })
        parser.on('error', (err: Error) => { throw err })
        const points = [...new Set(cuts.map(c => c % bytes.length))].sort((a, b) => a - b)
        let from = 0
        for (const at of [...points, bytes.length]) {
          if (at > from) reader.push(bytes.subarray(from, at))
          from = Math.max(from, at)
        }
        expect(got).toEqual(expected)
      }), { numRuns: 300 })
    })
  }

  it('encodes a PUBLISH that mqtt-packet reads back as the same packet, properties, alias and subscription ids included', () => {
    fc.assert(fc.property(topic, payload, fc.constantFrom(0, 1, 2), fc.boolean(), fc.boolean(), id, fc.option(userProperties, { nil: undefined }),
      fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }), fc.option(fc.array(fc.integer({ min: 1, max: 268_435_455 }), { minLength: 1, maxLength: 3 }), { nil: undefined }), fc.constantFrom<4 | 5>(4, 5),
      (t, body, qos, retain, dup, packetId, user, expiry, subscriptionIds, version) => {
        const message: BusMessage = { topic: t, payload: body, qos: qos as 0 | 1 | 2, retain, ...(user !== undefined ? { properties: { userProperties: user, contentType: 'c/t', correlationData: Buffer.from([1, 2]), responseTopic: 'r/t', payloadFormat: 0 as const } } : {}) }
        const fields: PublishFields = { version, topic: t, qos: qos as 0 | 1 | 2, retain, dup: qos > 0 && dup, packetId }
        if (version === 5) {
          if (expiry !== undefined) fields.expirySeconds = expiry
          if (subscriptionIds !== undefined) fields.subscriptionIds = subscriptionIds
          fields.topicAlias = 3
        }
        const parsed: mqttPacket.IPublishPacket[] = []
        const parser = mqttPacket.parser({ protocolVersion: version })
        parser.on('packet', (p: mqttPacket.Packet) => { if (p.cmd === 'publish') parsed.push(p) })
        parser.on('error', (err: Error) => { throw err })
        parser.parse(encodePublish(message, fields))
        expect(parsed).toHaveLength(1)
        const p = parsed[0]
        expect({ topic: p.topic, payload: Buffer.from(p.payload).toString('hex'), qos: p.qos, retain: p.retain, dup: p.dup }).toEqual({ topic: t, payload: body.toString('hex'), qos, retain, dup: qos > 0 && dup })
        if (qos > 0) expect(p.messageId).toBe(packetId)
        if (version === 5) {
          expect(p.properties?.topicAlias).toBe(3)
          if (expiry !== undefined) expect(p.properties?.messageExpiryInterval).toBe(expiry)
          if (subscriptionIds !== undefined) expect([p.properties?.subscriptionIdentifier].flat()).toEqual(subscriptionIds)
          if (user !== undefined) expect(p.properties).toMatchObject({ contentType: 'c/t', responseTopic: 'r/t', correlationData: Buffer.from([1, 2]) })
          if (user !== undefined && Object.keys(user).length > 0) expect({ ...p.properties?.userProperties }).toEqual(user)
        } else expect(p.properties).toBeUndefined()
      }), { numRuns: 300 })
  })
})

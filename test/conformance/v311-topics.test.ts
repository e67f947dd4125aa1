import { describe, expect, it } from 'vitest'
import type { IPublishPacket, ISubackPacket } from 'mqtt-packet'
import { BAD_UTF8, NUL_TOPIC, rawPublish, rawSubscribe, rawUnsubscribe } from './raw-client.js'
import { collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 3.1.1 UTF-8 strings (§1.5.3) in topic names and filters, topic names and filters (§4.7), as a
 * server is held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-4.7.3-3] (at most 65,535 bytes) is a rule for the sender; the broker is run here with
 *   --mqtt-max-topic-length 65535 and must carry a topic of that size.
 * UTF-8 in client ids, will topics and user names: v311-connect.
 */

const s = useBroker({ mqttMaxTopicLength: 65535 })

describe('MQTT 3.1.1 UTF-8 in topic names and filters', () => {
  for (const bad of [...BAD_UTF8, { name: 'U+0000', bytes: NUL_TOPIC }]) {
    const statement = bad.bytes === NUL_TOPIC ? '[MQTT-1.5.3-2] [MQTT-4.7.3-2]' : '[MQTT-1.5.3-1]'
    it(`${statement} [MQTT-3.3.2-1] a PUBLISH topic with ${bad.name} closes the connection and is not delivered`, async () => {
      const watcher = await s.client()
      const got = collect(watcher)
      const marker = fresh('utf8-marker/')
      await watcher.subscribeAsync(['#', marker])
      const c = await s.raw(4)
      c.sendBytes(rawPublish(bad.bytes, 'x', { qos: 1, id: 1 }))
      await c.awaitClose()
      expect(c.received.filter(p => p.cmd === 'puback')).toEqual([])
      await watcher.publishAsync(marker, 'm')
      expect((await untilMarker(got, marker)).filter(m => m.topic.startsWith('a'))).toEqual([])
    })

    it(`${statement} [MQTT-3.8.3-1] a SUBSCRIBE filter with ${bad.name} closes the connection`, async () => {
      const c = await s.raw(4)
      c.sendBytes(rawSubscribe(1, [{ filter: bad.bytes, options: 0 }]))
      await c.awaitClose()
      expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
    })

    it(`${statement} [MQTT-3.10.3-1] an UNSUBSCRIBE filter with ${bad.name} closes the connection`, async () => {
      const c = await s.raw(4)
      c.sendBytes(rawUnsubscribe(1, [bad.bytes]))
      await c.awaitClose()
      expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
    })
  }

  it('[MQTT-1.5.3-3] a leading U+FEFF is kept, not stripped: "\\uFEFFx" and "x" are different topics', async () => {
    const base = fresh('bom')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync([`\uFEFF${base}`, `${base}-marker`])
    const pub = await s.client()
    await pub.publishAsync(base, 'plain')
    await pub.publishAsync(`\uFEFF${base}`, 'bom')
    await pub.publishAsync(`${base}-marker`, 'm')
    const before = await untilMarker(got, `${base}-marker`)
    expect(before.map(m => [m.topic, m.payload.toString()])).toEqual([[`\uFEFF${base}`, 'bom']])
  })
})

describe('MQTT 3.1.1 topic names and filters', () => {
  for (const topic of ['a/+', 'a/#', '+', 'a/b+c']) {
    it(`[MQTT-4.7.1-1] [MQTT-3.3.2-2] a PUBLISH to "${topic}" (a wildcard in a topic name) closes the connection`, async () => {
      const c = await s.raw(4)
      c.sendBytes(rawPublish(topic, 'x', { qos: 1, id: 2 }))
      await c.awaitClose()
      expect(c.received.filter(p => p.cmd === 'puback')).toEqual([])
    })
  }

  for (const [statement, filter] of [['[MQTT-4.7.1-2]', 'a/#/b'], ['[MQTT-4.7.1-2]', 'a/b#'], ['[MQTT-4.7.1-3]', 'a/b+'], ['[MQTT-4.7.1-3]', '+a/b'], ['[MQTT-4.7.3-1]', '']] as const) {
    it(`${statement} the filter "${filter}" is not granted (SUBACK 0x80 or the connection closed)`, async () => {
      const c = await s.raw(4)
      c.sendBytes(rawSubscribe(1, [{ filter, options: 1 }]))
      const ack = await c.nextOrClose('suback') as ISubackPacket | undefined
      if (ack !== undefined) expect(ack.granted).toEqual([0x80])
    })
  }

  it('[MQTT-4.7.3-1] a PUBLISH with a zero-length topic name closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawPublish('', 'x', { qos: 1, id: 3 }))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'puback')).toEqual([])
  })

  it('[MQTT-4.7.1-2] [MQTT-4.7.1-3] wildcards match as §4.7.1 describes (# includes the parent, + one level, empty levels)', async () => {
    const b = fresh('m')
    const cases: Array<[string, string[], string[]]> = [
      [`${b}/sport/#`, [`${b}/sport`, `${b}/sport/tennis/p1`], [`${b}/sports`]],
      [`${b}/+/tennis`, [`${b}/x/tennis`, `${b}//tennis`], [`${b}/x/y/tennis`, `${b}/tennis`]],
      [`${b}/+`, [`${b}/x`, `${b}/`], [`${b}/x/y`, `${b}`]],
      [`+/+`, [`/${b}`], [`${b}x/y/z`]]
    ]
    for (const [filter, yes, no] of cases) {
      const watcher = await s.client()
      const got = collect(watcher)
      const marker = fresh(`${b}-marker/`)
      await watcher.subscribeAsync([filter, marker])
      const pub = await s.client()
      for (const t of [...no, ...yes]) await pub.publishAsync(t, t)
      await pub.publishAsync(marker, 'm')
      expect((await untilMarker(got, marker)).map(m => m.topic), filter).toEqual(yes)
      await watcher.endAsync()
    }
  })

  it('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $; $-filters do', async () => {
    const name = fresh('dollar')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(['#', `+/${name}`, `$${name}/#`])
    const pub = await s.client()
    await pub.publishAsync(`$${name}/${name}`, 'dollar')
    await pub.publishAsync(`${name}-marker`, 'm')
    const before = await untilMarker(got, `${name}-marker`)
    const mine = before.filter(m => m.topic.includes(name))
    expect(mine.map(m => m.topic)).toEqual([`$${name}/${name}`])
    expect(mine).toHaveLength(1)
  })

  it('[MQTT-4.7.3-4] no normalisation: case, empty levels, a trailing /, NFC against NFD and a replacement character are distinct', async () => {
    const b = fresh('norm')
    const topics = [`${b}/Caf\u00e9`, `${b}/Cafe\u0301`, `${b}/caf\u00e9`, `${b}//Caf\u00e9`, `${b}/Caf\u00e9/`, `${b}/\uFFFD`]
    for (const exact of topics) {
      const watcher = await s.client()
      const got = collect(watcher)
      await watcher.subscribeAsync([exact, `${b}-marker`])
      const pub = await s.client()
      for (const t of topics) await pub.publishAsync(t, t)
      await pub.publishAsync(`${b}-marker`, 'm')
      expect((await untilMarker(got, `${b}-marker`)).map(m => m.topic)).toEqual([exact])
      await watcher.endAsync()
      await pub.endAsync()
    }
  })

  it('[MQTT-4.7.3-3] a topic of 65,535 bytes is carried end to end', async () => {
    const topic = fresh('long').padEnd(65535, 'x')
    const sub = await s.raw(4)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    expect((await sub.next('suback') as ISubackPacket).granted).toEqual([1])
    const pub = await s.raw(4)
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('long'), qos: 1, messageId: 1, retain: false, dup: false })
    await pub.next('puback')
    const p = await sub.next('publish') as IPublishPacket
    expect(p.topic).toBe(topic)
  })
})

#!/usr/bin/env node
// worker.js: an OmniNode client and handler in Node.js, written from docs/handlers.md.
// It starts instances of the `greeting` workflow (rss/greeting.yaml), serves the effect
// `compose_greeting` on its own task queue, reads the instances projection until every
// started instance has ended, and prints a JSON summary as its last line of output.
'use strict'
const fs = require('fs')
const path = require('path')
const { parseArgs } = require('util')
const avro = require('avsc')
const { Kafka, Partitioners, logLevel } = require('kafkajs')

const { values: opts } = parseArgs({
  options: {
    instances: { type: 'string', default: '5' }, // how many instances to start
    timeout: { type: 'string', default: '60' }, // seconds to wait for them all to end
    queue: { type: 'string', default: 'node' }, // the task queue served here
    prefix: { type: 'string', default: `n-${Date.now().toString(36)}` }, // instance ids
    schemas: { type: 'string', default: process.env.OMNINODE_SCHEMAS || path.join(__dirname, '..', '..', 'avro_schemas') },
  },
})
const WORKFLOW = 'greeting'
const APP_ID = process.env.OMNINODE_APP_ID || 'omninode'
// Our own consumer group: in the workers' group (the app id) we would take their partitions.
const GROUP = process.env.NODE_WORKER_GROUP || `${APP_ID}.node-worker`
const MAX_RESULT_BYTES = Number(process.env.OMNINODE_MAX_RESULT_BYTES || 131072)
// The embedded broker (OMNINODE_PROFILE=local, docs/runtime.md) answers a fetch only when its
// max wait expires, and a group join waits half the session timeout: keep both short there.
const LOCAL = process.env.OMNINODE_PROFILE === 'local'
const CONSUMER = LOCAL ? { sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 25 } : {}
// A logical topic name's leading `omninode` is replaced by the app id.
const topic = (logical) => APP_ID + logical.slice('omninode'.length)

// Avro in the Confluent wire format: 0x00, a 4-byte big-endian schema id, the Avro body. The
// id is the first 4 bytes of the SHA-256 of the schema's Parsing Canonical Form, shifted
// right by one bit (avsc's fingerprint hashes that same canonical form). No registry.
function codec(name) {
  const load = (file) => avro.Type.forSchema(JSON.parse(fs.readFileSync(file, 'utf8')))
  const idOf = (type) => type.fingerprint('sha256').readUInt32BE(0) >>> 1
  const type = load(path.join(opts.schemas, `${name}.avsc`))
  const id = idOf(type)
  const readers = new Map([[id, undefined]]) // schema id -> resolver (none: the current schema)
  const history = path.join(opts.schemas, 'history') // earlier versions, read by resolution
  for (const version of fs.existsSync(history) ? fs.readdirSync(history).sort() : []) {
    const file = path.join(history, version, `${name}.avsc`)
    if (!fs.existsSync(file)) continue
    const old = load(file)
    if (!readers.has(idOf(old))) readers.set(idOf(old), type.createResolver(old))
  }
  const header = Buffer.alloc(5)
  header.writeUInt32BE(id, 1)
  return {
    id,
    encode: (record) => Buffer.concat([header, type.toBuffer(record)]),
    decode(bytes) {
      if (!bytes || bytes.length < 5 || bytes[0] !== 0) throw new Error('not Confluent wire format')
      const got = bytes.readUInt32BE(1)
      if (!readers.has(got)) throw new Error(`schema id ${got} is not ${name} (id ${id})`)
      return type.fromBuffer(bytes.subarray(5), readers.get(got))
    },
  }
}
const COMMAND = codec('omninode.Command')
const EVENT = codec('omninode.Event')
const VIEW = codec('omninode.InstanceView')

// The handlers served here, by `<kind>:<name>`. ctx.idempotencyKey is the command id: a real
// handler passes it to the systems it calls, so that a re-run does the work once.
class NonRetryableError extends Error {}
const handlers = {
  'effect:compose_greeting': async (input, ctx) => {
    if (typeof input.name !== 'string' || !input.name) throw new NonRetryableError('no name')
    return { greeting: `Hello, ${input.name}!`, served_by: 'node', pid: process.pid, attempt: ctx.attempt }
  },
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const TIMED_OUT = Symbol('timed out')
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

function delayBeforeAttempt({ backoff, initial_ms: initial, max_ms: max }, attempt) {
  if (attempt <= 1) return 0
  return backoff === 'fixed' ? initial : Math.min(max, initial * 2 ** (attempt - 2))
}

function failed(error, attempts) { // the worker cuts errors to 4,096 characters
  const text = error.length > 4096 ? error.slice(0, 4096 - 15) + '... (truncated)' : error
  return { outcome: 'failed', payload: { error: text, attempts } }
}

// Attempts 1..max_attempts with the command's backoff; timeout_ms bounds each attempt
// (null or 0: no bound). A handler that throws NonRetryableError is not tried again.
async function run(command, handler) {
  const input = JSON.parse(command.input)
  let last = failed('not run', 0)
  for (let attempt = 1; attempt <= Math.max(1, command.retry.max_attempts); attempt++) {
    await sleep(delayBeforeAttempt(command.retry, attempt))
    const ctx = { idempotencyKey: command.command_id, workflowType: command.workflow_type,
      instanceId: command.instance_id, name: command.name, kind: command.kind, attempt }
    let timer
    const bound = new Promise((resolve) => {
      if (command.timeout_ms) timer = setTimeout(() => resolve(TIMED_OUT), command.timeout_ms)
    })
    try {
      const value = await Promise.race([handler(input, ctx), bound])
      if (value === TIMED_OUT) { last = { outcome: 'timeout', payload: { attempts: attempt } }; continue }
      const payload = isObject(value) ? value : { result: value ?? null } // non-objects are wrapped
      let text // a result that cannot be a .done payload is not retried: it would come back the same
      try { text = JSON.stringify(payload) } catch (err) { return failed(`handler result is not plain JSON: ${err.message}`, attempt) }
      const size = Buffer.byteLength(text)
      if (size > MAX_RESULT_BYTES) {
        return failed(`handler result too large: ${size} bytes of JSON, over the limit of ` +
          `${MAX_RESULT_BYTES} (OMNINODE_MAX_RESULT_BYTES)`, attempt)
      }
      return { outcome: 'done', payload }
    } catch (err) {
      last = failed(err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err), attempt)
      if (err instanceof NonRetryableError) return last
    } finally {
      clearTimeout(timer)
    }
  }
  return last
}

function event(workflowType, instanceId, type, payload, extra = {}) { // an omninode.Event
  return {
    event_id: extra.event_id, workflow_type: workflowType, instance_id: instanceId, type,
    seq: null, payload: JSON.stringify(payload), occurred_at: new Date().toISOString(),
    dispatch_id: null, timer_id: null, causation_id: null, correlation_id: null,
    parent: null, version: null, ...extra,
  }
}

// The result event: event_id `<command_id>.<outcome>` (stable, so a second answer is a
// duplicate); dispatch_id ties it to the pending dispatch; causation_id is the command id too.
const resultEvent = (command, { outcome, payload }) =>
  event(command.workflow_type, command.instance_id, `${command.name}.${outcome}`, payload, {
    event_id: `${command.command_id}.${outcome}`,
    dispatch_id: command.command_id,
    causation_id: command.command_id,
  })

async function main() {
  const t0 = Date.now()
  const count = Number(opts.instances)
  const kafka = new Kafka({
    clientId: 'omninode-node-worker',
    brokers: (process.env.KAFKA_BOOTSTRAP_SERVERS || '127.0.0.1:9092').split(','),
    logLevel: logLevel.WARN, // kafkajs logs to the console; stdout stays for the summary
  })
  // Every record about an instance must land on the partition its key hashes to (murmur2,
  // as Java and aiokafka). In kafkajs 2.x that is DefaultPartitioner; LegacyPartitioner is not.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  const commands = kafka.consumer({ groupId: GROUP, ...CONSUMER })
  // The projection is read from its start by a group of its own, new on every run.
  const views = kafka.consumer({ groupId: `${GROUP}.views.${process.pid}.${Date.now()}`, ...CONSUMER })
  const stats = { served: 0, answered: 0, duplicates: 0, skipped: 0, undecodable: 0 }
  const ids = Array.from({ length: count }, (_, n) => `${opts.prefix}-${n}`)
  const started = new Set(ids)
  const statuses = new Map() // instance id -> status in the projection
  let allEnded
  const ended = new Promise((resolve) => { allEnded = resolve })

  await producer.connect()
  await commands.connect()
  await views.connect()
  await commands.subscribe({ topics: [topic(`omninode.commands.${opts.queue}`)], fromBeginning: true })
  await views.subscribe({ topics: [topic('omninode.projection.instances')], fromBeginning: true })

  // Idempotent by command_id: the answer is kept (here in memory; a real service keeps it in
  // a durable store) before it is sent, and a copy of the command gets the same bytes again.
  // A copy arriving while the first still runs waits for that run.
  const answers = new Map() // command_id -> Promise of the encoded answer (null: none to send)
  const serving = commands.run({
    partitionsConsumedConcurrently: 4,
    eachMessage: async ({ message, heartbeat }) => {
      let command
      try {
        command = COMMAND.decode(message.value)
      } catch (err) {
        stats.undecodable++
        console.error(`undecodable command: ${err.message}`)
        return
      }
      const handler = handlers[`${command.kind}:${command.name}`]
      if (!handler) { // not ours to answer: another service serves this name
        stats.skipped++
        console.error(`no handler for ${command.kind} ${command.name} on queue ${opts.queue}`)
        return
      }
      let answer = answers.get(command.command_id)
      if (answer === undefined) {
        stats.served++
        answer = (async () => {
          const beat = setInterval(() => heartbeat().catch(() => {}), 1000) // stay in the group
          let outcome
          try { outcome = await run(command, handler) } finally { clearInterval(beat) }
          if (command.mode === 'fire_and_forget') { // never answered; the worker dead-letters a failure
            if (outcome.outcome !== 'done') console.error(`${command.name} ${outcome.outcome}: ${JSON.stringify(outcome.payload)}`)
            return null
          }
          return EVENT.encode(resultEvent(command, outcome))
        })()
        answers.set(command.command_id, answer)
      } else {
        stats.duplicates++
      }
      const bytes = await answer
      if (bytes !== null) { // the command's key: the result goes to the instance's partition
        await producer.send({ topic: topic('omninode.results'), acks: -1, messages: [{ key: message.key, value: bytes }] })
        stats.answered++
      } // returning lets kafkajs commit the offset, after the answer is acknowledged
    },
  })

  const reading = views.run({
    eachMessage: async ({ message }) => {
      if (!message.value) return // a tombstone
      const view = VIEW.decode(message.value)
      if (view.workflow_type !== WORKFLOW || !started.has(view.instance_id)) return
      statuses.set(view.instance_id, view.status)
      if (ids.every((id) => (statuses.get(id) || 'active') !== 'active')) allEnded()
    },
  })

  // Start the instances: a `$start` on the events topic, keyed `workflowType:instanceId`.
  await producer.send({
    topic: topic('omninode.events'),
    acks: -1,
    messages: ids.map((id) => ({
      key: Buffer.from(`${WORKFLOW}:${id}`, 'utf8'),
      value: EVENT.encode(event(WORKFLOW, id, '$start', { name: `guest ${id}` }, { event_id: `${id}:$start` })),
    })),
  })

  await Promise.all([serving, reading]) // each resolves once its group is joined (fromBeginning: nothing is missed)
  const timedOut = await Promise.race([ended.then(() => false), sleep(Number(opts.timeout) * 1000).then(() => true)])
  const withStatus = (status) => ids.filter((id) => statuses.get(id) === status).length
  const summary = {
    workflow: WORKFLOW, queue: opts.queue, started: count, done: withStatus('done'), failed: withStatus('failed'),
    not_ended: ids.filter((id) => (statuses.get(id) || 'active') === 'active').length,
    timed_out: timedOut, elapsed_s: (Date.now() - t0) / 1000, ...stats, instance_ids: ids,
  }
  await Promise.allSettled([commands.disconnect(), views.disconnect(), producer.disconnect()])
  console.log(JSON.stringify(summary))
  return summary.done === count ? 0 : 1
}

if (require.main === module) {
  main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(2) })
}
module.exports = { COMMAND, EVENT, VIEW, run, resultEvent, handlers, topic }

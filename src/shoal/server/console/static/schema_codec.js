// Schema-registry framed records (Confluent's wire format) in the console, decoded for the
// message browser and encoded (Avro, JSON Schema) for the produce page:
//
//   byte 0: 0x00 (magic) | bytes 1-4: schema id, big-endian | [Protobuf: message indexes] | payload
//
// The schema comes from the registry (GET /schemas/ids/{id}; Protobuf's as a serialized
// FileDescriptorProto with ?format=serialized), and the payload is turned into plain JSON:
// Avro binary, JSON Schema (the payload is JSON text), or Protobuf. Only data is produced here;
// the console shows it as text.
"use strict";

const SchemaDecode = (() => {
  const MAGIC = 0;
  const HEADER_BYTES = 5;
  const schemas = new Map(); // schema id -> Promise of { type, reader }

  class Reader {
    constructor(bytes, pos = 0) { this.bytes = bytes; this.pos = pos; this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
    done() { return this.pos >= this.bytes.length; }
    byte() {
      if (this.pos >= this.bytes.length) throw new Error("truncated record");
      return this.bytes[this.pos++];
    }
    varint() { // unsigned, as a BigInt (64-bit values do not fit a double)
      let result = 0n, shift = 0n;
      for (;;) {
        const b = this.byte();
        result |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return result;
        shift += 7n;
        if (shift > 63n) throw new Error("varint too long");
      }
    }
    zigzag() { const v = this.varint(); return (v >> 1n) ^ -(v & 1n); }
    take(n) {
      if (n < 0 || this.pos + n > this.bytes.length) throw new Error("truncated record");
      const out = this.bytes.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    float32() { const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
    float64() { const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  }

  const utf8 = new TextDecoder("utf-8");
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  // A 64-bit integer as a JSON number when exact, else as its decimal string.
  const num = (big) => (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString());

  function bytesOf(v) {
    if (v.encoding === "utf-8") return new TextEncoder().encode(v.data);
    return Uint8Array.from(atob(v.data), (c) => c.charCodeAt(0));
  }

  // ---- Avro ---------------------------------------------------------------------------

  function avroNames(root) {
    const named = new Map();
    function register(schema, namespace) {
      if (Array.isArray(schema)) { schema.forEach((s) => register(s, namespace)); return; }
      if (schema === null || typeof schema !== "object") return;
      if (["record", "error", "enum", "fixed"].includes(schema.type)) {
        const ns = schema.name.includes(".") ? schema.name.slice(0, schema.name.lastIndexOf(".")) : (schema.namespace ?? namespace);
        const short = schema.name.split(".").pop();
        named.set(ns ? ns + "." + short : short, schema);
        named.set(short, named.get(short) || schema);
        schema.__ns = ns;
        (schema.fields || []).forEach((f) => register(f.type, ns));
      } else if (schema.type === "array") register(schema.items, namespace);
      else if (schema.type === "map") register(schema.values, namespace);
      else if (typeof schema.type === "object") register(schema.type, namespace);
    }
    register(root, "");
    return (name, ns) => named.get(name.includes(".") || !ns ? name : ns + "." + name) || named.get(name);
  }

  function avroReader(schemaText) {
    const root = JSON.parse(schemaText);
    const lookup = avroNames(root);
    function read(schema, r, ns) {
      if (Array.isArray(schema)) return read(schema[num(r.zigzag())], r, ns);
      if (typeof schema === "string") {
        switch (schema) {
          case "null": return null;
          case "boolean": return r.byte() !== 0;
          case "int": case "long": return num(r.zigzag());
          case "float": return r.float32();
          case "double": return r.float64();
          case "bytes": return hex(r.take(num(r.zigzag())));
          case "string": return utf8.decode(r.take(num(r.zigzag())));
          default: {
            const found = lookup(schema, ns);
            if (!found) throw new Error("unknown Avro type " + schema);
            return read(found, r, found.__ns);
          }
        }
      }
      switch (schema.type) {
        case "record": case "error": {
          const out = {};
          for (const f of schema.fields) out[f.name] = read(f.type, r, schema.__ns);
          return out;
        }
        case "enum": return schema.symbols[num(r.zigzag())];
        case "fixed": return hex(r.take(schema.size));
        case "array": case "map": {
          const isMap = schema.type === "map";
          const out = isMap ? {} : [];
          for (;;) {
            let count = num(r.zigzag());
            if (count === 0) return out;
            if (count < 0) { count = -count; r.zigzag(); } // a block with its size in bytes
            for (let i = 0; i < count; i++) {
              if (isMap) { const k = utf8.decode(r.take(num(r.zigzag()))); out[k] = read(schema.values, r, ns); }
              else out.push(read(schema.items, r, ns));
            }
          }
        }
        default: return read(schema.type, r, ns); // {"type": "long", "logicalType": ...}
      }
    }
    return (bytes, pos) => read(root, new Reader(bytes, pos), root.__ns);
  }

  // ---- Protobuf -----------------------------------------------------------------------

  // The generic wire format: field number -> list of raw values, in order.
  function fields(bytes) {
    const r = new Reader(bytes);
    const out = [];
    while (!r.done()) {
      const tag = num(r.varint());
      const number = Math.floor(tag / 8), wire = tag % 8;
      let value;
      if (wire === 0) value = r.varint();
      else if (wire === 1) value = r.take(8);
      else if (wire === 2) value = r.take(num(r.varint()));
      else if (wire === 5) value = r.take(4);
      else throw new Error("unsupported protobuf wire type " + wire);
      out.push({ number, wire, value });
    }
    return out;
  }
  const str = (v) => utf8.decode(v);

  // FileDescriptorProto -> { messages: full name -> descriptor, enums, top: [the file's
  // messages], pkg }. ``imports``: the files it imports (its registry references), whose
  // messages and enums its fields may name; only the main file's messages have indexes.
  function protoDescriptor(serialized, imports = []) {
    const messages = new Map(), enums = new Map();
    function enumOf(bytes, prefix) {
      const e = { name: "", values: new Map() };
      for (const f of fields(bytes)) {
        if (f.number === 1) e.name = str(f.value);
        if (f.number === 2) {
          let name = "", number = 0;
          for (const g of fields(f.value)) { if (g.number === 1) name = str(g.value); if (g.number === 2) number = Number(BigInt.asIntN(32, g.value)); }
          e.values.set(number, name);
        }
      }
      enums.set(prefix + "." + e.name, e);
    }
    function messageOf(bytes, prefix) {
      const m = { name: "", fields: new Map(), nested: [], mapEntry: false };
      const raw = fields(bytes);
      for (const f of raw) if (f.number === 1) m.name = str(f.value);
      const full = prefix + "." + m.name;
      m.full = full;
      for (const f of raw) {
        if (f.number === 2) {
          const field = { name: "", number: 0, label: 1, type: 0, typeName: "" };
          for (const g of fields(f.value)) {
            if (g.number === 1) field.name = str(g.value);
            if (g.number === 3) field.number = num(g.value);
            if (g.number === 4) field.label = num(g.value);
            if (g.number === 5) field.type = num(g.value);
            if (g.number === 6) field.typeName = str(g.value);
          }
          m.fields.set(field.number, field);
        }
        if (f.number === 3) m.nested.push(messageOf(f.value, full));
        if (f.number === 4) enumOf(f.value, full);
        if (f.number === 7) for (const g of fields(f.value)) if (g.number === 7) m.mapEntry = g.value !== 0n;
      }
      messages.set(full, m);
      return m;
    }
    const top = [];
    function file(bytes, main) {
      let pkg = "";
      const parsed = fields(bytes);
      for (const f of parsed) if (f.number === 2) pkg = str(f.value);
      const prefix = pkg ? "." + pkg : "";
      for (const f of parsed) {
        if (f.number === 4) { const m = messageOf(f.value, prefix); if (main) top.push(m); }
        if (f.number === 5) enumOf(f.value, prefix);
      }
      return prefix;
    }
    imports.forEach((bytes) => file(bytes, false));
    const pkg = file(serialized, true); // last: its own names win over an import's
    return { messages, enums, top, pkg };
  }
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const descriptorOf = (serializedBase64, imports) =>
    protoDescriptor(fromBase64(serializedBase64), (imports || []).map(fromBase64));

  // The serialized descriptors of every file a Protobuf schema imports: its references (each
  // a subject's version), theirs, and so on, dependencies first, as Confluent's deserializer
  // resolves them. ``found``: the schema's registry answer.
  async function protoImports(found, fetchJson, seen = new Set()) {
    const out = [];
    for (const ref of found.references || []) {
      const version = await fetchJson("/subjects/" + encodeURIComponent(ref.subject) + "/versions/" + encodeURIComponent(ref.version));
      if (seen.has(version.id)) continue; // imported twice (or a cycle): once is enough
      seen.add(version.id);
      out.push(...(await protoImports(version, fetchJson, seen)));
      out.push((await fetchJson("/schemas/ids/" + version.id + "?format=serialized")).schema);
    }
    return out;
  }

  function protoReader(serializedBase64, imports) {
    const desc = descriptorOf(serializedBase64, imports);
    const FIXED64 = new Set([1, 6, 16]), FIXED32 = new Set([2, 7, 15]);
    function scalar(field, value) {
      const t = field.type;
      if (t === 9) return str(value);
      if (t === 12) return hex(value);
      if (t === 8) return value !== 0n;
      if (t === 1 || t === 6 || t === 16) {
        const view = new DataView(value.buffer, value.byteOffset, 8);
        return t === 1 ? view.getFloat64(0, true) : num(t === 6 ? view.getBigUint64(0, true) : view.getBigInt64(0, true));
      }
      if (t === 2 || t === 7 || t === 15) {
        const view = new DataView(value.buffer, value.byteOffset, 4);
        return t === 2 ? view.getFloat32(0, true) : t === 7 ? view.getUint32(0, true) : view.getInt32(0, true);
      }
      if (t === 17 || t === 18) return num((value >> 1n) ^ -(value & 1n));
      if (t === 3) return num(BigInt.asIntN(64, value));
      if (t === 5) return Number(BigInt.asIntN(32, value));
      if (t === 4 || t === 13) return num(value);
      if (t === 14) {
        const e = desc.enums.get(field.typeName);
        const n = Number(BigInt.asIntN(32, value));
        return e && e.values.has(n) ? e.values.get(n) : n;
      }
      throw new Error("unsupported protobuf field type " + t);
    }
    function packed(field, bytes) {
      const r = new Reader(bytes), out = [];
      while (!r.done()) {
        if (FIXED64.has(field.type)) out.push(scalar(field, r.take(8)));
        else if (FIXED32.has(field.type)) out.push(scalar(field, r.take(4)));
        else out.push(scalar(field, r.varint()));
      }
      return out;
    }
    function message(m, bytes) {
      const out = {};
      for (const f of fields(bytes)) {
        const field = m.fields.get(f.number);
        if (!field) { out[String(f.number)] = f.value instanceof Uint8Array ? hex(f.value) : num(f.value); continue; }
        const sub = field.type === 11 ? desc.messages.get(field.typeName) : null;
        if (sub && sub.mapEntry) {
          const entry = message(sub, f.value);
          out[field.name] = out[field.name] || {};
          out[field.name][String(entry.key ?? "")] = entry.value ?? null;
          continue;
        }
        let values;
        if (sub) values = [message(sub, f.value)];
        else if (f.wire === 2 && field.type !== 9 && field.type !== 12) values = packed(field, f.value);
        else values = [scalar(field, f.value)];
        if (field.label === 3) out[field.name] = (out[field.name] || []).concat(values);
        else out[field.name] = values[values.length - 1];
      }
      return out;
    }
    return (bytes, pos) => {
      const r = new Reader(bytes, pos);
      // Message indexes: a count then that many indexes (zigzag), or a single 0 for [0].
      const count = num(r.zigzag());
      const path = count === 0 ? [0] : Array.from({ length: count }, () => num(r.zigzag()));
      let m = desc.top[path[0]];
      for (const i of path.slice(1)) m = m && m.nested[i];
      if (!m) throw new Error("no message at indexes " + path.join(","));
      return message(m, bytes.subarray(r.pos));
    };
  }

  // ---- Avro encoding (produce) ---------------------------------------------------------

  class Writer {
    constructor() { this.parts = []; }
    raw(bytes) { this.parts.push(bytes); }
    varint(big) { // unsigned BigInt
      const out = [];
      do {
        let b = Number(big & 0x7fn);
        big >>= 7n;
        if (big) b |= 0x80;
        out.push(b);
      } while (big);
      this.raw(Uint8Array.from(out));
    }
    zigzag(n) { const v = BigInt(n); this.varint(v >= 0n ? v << 1n : ((-v) << 1n) - 1n); }
    bytes(b) { this.zigzag(b.length); this.raw(b); } // Avro: zigzag length
    delimited(b) { this.varint(BigInt(b.length)); this.raw(b); } // Protobuf: varint length
    float(size, v) {
      const buf = new Uint8Array(size), view = new DataView(buf.buffer);
      if (size === 4) view.setFloat32(0, v, true); else view.setFloat64(0, v, true);
      this.raw(buf);
    }
    result() {
      const total = this.parts.reduce((n, p) => n + p.length, 0);
      const out = new Uint8Array(total);
      let at = 0;
      for (const p of this.parts) { out.set(p, at); at += p.length; }
      return out;
    }
  }

  function avroWriter(schemaText) {
    const root = JSON.parse(schemaText);
    const lookup = avroNames(root);
    const fail = (path, what) => { throw new Error((path || "value") + ": " + what); };
    function resolve(schema, ns) {
      if (typeof schema === "string" && !PRIMITIVES.has(schema)) return lookup(schema, ns) || fail("", "unknown Avro type " + schema);
      return schema;
    }
    function matches(schema, value, ns) {
      const s = resolve(schema, ns);
      const t = typeof s === "string" ? s : s.type;
      if (value === null) return t === "null";
      if (t === "boolean") return typeof value === "boolean";
      if (["int", "long", "float", "double"].includes(t)) return typeof value === "number";
      if (["string", "bytes", "enum", "fixed"].includes(t)) return typeof value === "string";
      if (t === "array") return Array.isArray(value);
      if (t === "record" || t === "error" || t === "map") return typeof value === "object" && !Array.isArray(value);
      return typeof s === "object" && matches(s.type, value, ns);
    }
    function write(schema, value, w, ns, path) {
      if (Array.isArray(schema)) { // a union: the first branch the value fits
        const index = schema.findIndex((branch) => matches(branch, value, ns));
        if (index < 0) fail(path, "fits no branch of the union");
        w.zigzag(index);
        return write(schema[index], value, w, ns, path);
      }
      const s = resolve(schema, ns);
      const type = typeof s === "string" ? s : s.type;
      const need = (ok, what) => { if (!ok) fail(path, "expected " + what); };
      switch (type) {
        case "null": need(value === null, "null"); return;
        case "boolean": need(typeof value === "boolean", "true or false"); w.raw(Uint8Array.of(value ? 1 : 0)); return;
        case "int": case "long": need(Number.isInteger(value), "an integer"); w.zigzag(value); return;
        case "float": case "double": need(typeof value === "number", "a number"); w.float(type === "float" ? 4 : 8, value); return;
        case "string": case "bytes": need(typeof value === "string", "a string"); w.bytes(new TextEncoder().encode(value)); return;
        case "enum": {
          const index = s.symbols.indexOf(value);
          need(index >= 0, "one of " + s.symbols.join(", "));
          w.zigzag(index);
          return;
        }
        case "fixed": {
          const b = new TextEncoder().encode(value);
          need(b.length === s.size, s.size + " bytes");
          w.raw(b);
          return;
        }
        case "array":
          need(Array.isArray(value), "an array");
          if (value.length) { w.zigzag(value.length); value.forEach((v, i) => write(s.items, v, w, ns, path + "[" + i + "]")); }
          w.zigzag(0);
          return;
        case "map": {
          need(typeof value === "object" && value !== null && !Array.isArray(value), "an object");
          const entries = Object.entries(value);
          if (entries.length) {
            w.zigzag(entries.length);
            for (const [k, v] of entries) { w.bytes(new TextEncoder().encode(k)); write(s.values, v, w, ns, path + "." + k); }
          }
          w.zigzag(0);
          return;
        }
        case "record": case "error":
          need(typeof value === "object" && value !== null && !Array.isArray(value), "an object");
          for (const f of s.fields) {
            const v = f.name in value ? value[f.name] : f.default;
            if (v === undefined) fail(path ? path + "." + f.name : f.name, "is required");
            write(f.type, v, w, s.__ns, path ? path + "." + f.name : f.name);
          }
          return;
        default: return write(s.type, value, w, ns, path);
      }
    }
    return (value) => { const w = new Writer(); write(root, value, w, root.__ns, ""); return w.result(); };
  }
  const PRIMITIVES = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]);

  // ---- Protobuf encoding (produce) -----------------------------------------------------

  // JSON -> the message named (its full name, or its name within the file's package), else
  // the file's first message (message indexes [0], written as a single 0 byte).
  function protoWriter(serializedBase64, imports, messageName) {
    const desc = descriptorOf(serializedBase64, imports);
    const fail = (path, what) => { throw new Error(path + ": " + what); };
    const tag = (w, number, wire) => w.varint(BigInt(number * 8 + wire));
    const VARINT_TYPES = new Set([3, 4, 5, 8, 13, 14, 17, 18]);
    function scalar(w, field, value, path) {
      const t = field.type;
      if (t === 9) { if (typeof value !== "string") fail(path, "expected a string"); tag(w, field.number, 2); w.delimited(new TextEncoder().encode(value)); return; }
      if (t === 12) { if (typeof value !== "string") fail(path, "expected a string"); tag(w, field.number, 2); w.delimited(new TextEncoder().encode(value)); return; }
      if (t === 1 || t === 2) { if (typeof value !== "number") fail(path, "expected a number"); tag(w, field.number, t === 1 ? 1 : 5); w.float(t === 1 ? 8 : 4, value); return; }
      let n;
      if (t === 8) { if (typeof value !== "boolean") fail(path, "expected true or false"); n = value ? 1n : 0n; }
      else if (t === 14) {
        const e = desc.enums.get(field.typeName);
        const found = e && [...e.values].find(([, name]) => name === value);
        if (found) n = BigInt(found[0]); else if (Number.isInteger(value)) n = BigInt(value); else fail(path, "expected one of " + (e ? [...e.values.values()].join(", ") : "the enum"));
      } else {
        if (!Number.isInteger(value) && !(typeof value === "string" && /^-?\d+$/.test(value))) fail(path, "expected an integer");
        n = BigInt(value);
      }
      if (VARINT_TYPES.has(t)) {
        tag(w, field.number, 0);
        if (t === 17 || t === 18) w.varint(n >= 0n ? n << 1n : ((-n) << 1n) - 1n);
        else w.varint(BigInt.asUintN(64, n));
        return;
      }
      const size = [6, 16].includes(t) ? 8 : 4; // fixed64/sfixed64, fixed32/sfixed32
      const buf = new Uint8Array(size), view = new DataView(buf.buffer);
      if (size === 8) view.setBigUint64(0, BigInt.asUintN(64, n), true); else view.setUint32(0, Number(BigInt.asUintN(32, n)), true);
      tag(w, field.number, size === 8 ? 1 : 5);
      w.raw(buf);
    }
    function message(m, value, path) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "expected an object");
      const byName = new Map([...m.fields.values()].map((f) => [f.name, f]));
      const w = new Writer();
      for (const [name, v] of Object.entries(value)) {
        const field = byName.get(name) || fail(path ? path + "." + name : name, "no such field");
        const at = path ? path + "." + name : name;
        const sub = field.type === 11 ? desc.messages.get(field.typeName) : null;
        const one = (item, itemPath) => {
          if (sub) { tag(w, field.number, 2); w.delimited(message(sub, item, itemPath)); } else scalar(w, field, item, itemPath);
        };
        if (sub && sub.mapEntry) {
          for (const [k, item] of Object.entries(v)) one({ key: k, value: item }, at + "." + k);
        } else if (field.label === 3) {
          if (!Array.isArray(v)) fail(at, "expected an array");
          v.forEach((item, i) => one(item, at + "[" + i + "]"));
        } else one(v, at);
      }
      return w.result();
    }
    // The message's path of indexes in the file: [i] for its i-th message, [i, j] for the
    // j-th message nested in that one, ... (what a Confluent deserializer reads back).
    function chosen(name) {
      if (!desc.top.length) throw new Error("the schema has no message");
      if (!name) return { m: desc.top[0], path: [0] };
      const wanted = name.startsWith(".") ? [name] : ["." + name, desc.pkg + "." + name];
      const names = [];
      function search(list, path) {
        for (const [i, m] of list.entries()) {
          if (m.mapEntry) continue;
          names.push(m.full.slice(1));
          if (wanted.includes(m.full)) return { m, path: [...path, i] };
          const found = search(m.nested, [...path, i]);
          if (found) return found;
        }
        return null;
      }
      return search(desc.top, []) || fail(name, "no such message in the schema (it has " + names.join(", ") + ")");
    }
    const { m: root, path } = chosen(messageName);
    return (value) => {
      const body = message(root, value, "");
      const w = new Writer();
      if (path.length === 1 && path[0] === 0) w.varint(0n); // the common case: a single 0
      else { w.varint(BigInt(path.length * 2)); for (const i of path) w.varint(BigInt(i * 2)); } // zigzag
      w.raw(body);
      return w.result();
    };
  }

  // A JSON value framed for schema ``id`` (its registry answer ``found``; for Protobuf,
  // ``serialized`` is its ?format=serialized descriptor, ``imports`` those of the files it
  // imports (protoImports), ``messageName`` the message to write, else the file's first).
  function encode(id, found, value, serialized, imports = [], messageName = "") {
    const type = found.schemaType || "AVRO";
    let payload;
    if (type === "AVRO") payload = avroWriter(found.schema)(value);
    else if (type === "JSON") payload = new TextEncoder().encode(JSON.stringify(value));
    else payload = protoWriter(serialized, imports, messageName)(value);
    const out = new Uint8Array(HEADER_BYTES + payload.length);
    new DataView(out.buffer).setUint32(1, id, false); // out[0] stays MAGIC (0)
    out.set(payload, HEADER_BYTES);
    return out;
  }

  // ---- entry point --------------------------------------------------------------------

  function schema(id, fetchJson) {
    if (!schemas.has(id)) {
      schemas.set(id, (async () => {
        const found = await fetchJson("/schemas/ids/" + id);
        const type = found.schemaType || "AVRO";
        if (type === "PROTOBUF") {
          const serialized = await fetchJson("/schemas/ids/" + id + "?format=serialized");
          return { type, read: protoReader(serialized.schema, await protoImports(found, fetchJson)) };
        }
        if (type === "JSON") return { type, read: (bytes, pos) => JSON.parse(utf8.decode(bytes.subarray(pos))) };
        return { type, read: avroReader(found.schema) };
      })());
      schemas.get(id).catch(() => schemas.delete(id)); // a failed lookup is tried again later
    }
    return schemas.get(id);
  }

  // {encoding, data} -> { id, type, value } for a framed record, else null (not framed).
  async function decode(v, fetchJson) {
    if (!v) return null;
    const bytes = bytesOf(v);
    if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC) return null;
    const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1, false);
    const found = await schema(id, fetchJson);
    return { id, type: found.type, value: found.read(bytes, HEADER_BYTES) };
  }

  return { decode, encode, protoImports };
})();

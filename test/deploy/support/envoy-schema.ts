import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_INCLUDE_DIRS } from '../../../src/envoy/protos.js';

/**
 * Strict checker for Envoy configuration written as YAML/JSON, against Envoy's own protos from the pinned
 * `@grpc/grpc-js-xds` package. It applies the proto3 JSON mapping the way Envoy's loader does with
 * unknown fields rejected: every key must be a field of its message (proto name or lowerCamel JSON name),
 * every `google.protobuf.Any` must name a resolvable `@type` and is checked recursively, enum values must
 * be defined names (or defined numbers), Durations must be strings like "0.25s", and no oneof may be set
 * twice. Beyond the JSON mapping it also rejects deprecated fields and enforces the two protoc-gen-validate
 * rules that catch most copy-paste mistakes: required messages and required oneofs.
 *
 * Why not just `Type.fromObject`: protobufjs silently drops unknown keys and coerces bad values.
 */

const require = createRequire(import.meta.url);
// Same registration @grpc/proto-loader does: descriptor.proto is bundled with protobufjs as JSON.
protobuf.common('descriptor', require('protobufjs/google/protobuf/descriptor.json').nested.google.nested.protobuf.nested);

const TYPE_URL_PREFIX = 'type.googleapis.com/';
const DURATION = /^-?\d+(\.\d{1,9})?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const INT = /^-?\d+$/;

const WRAPPERS: Record<string, string> = {
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.DoubleValue': 'double',
};

/** Messages whose JSON form is not an object of fields (proto3 JSON mapping "well-known types"). */
const SPECIAL_JSON = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  ...Object.keys(WRAPPERS),
]);

export interface CheckOptions {
  /** A fragment merged into an existing object (EnvoyFilter MERGE): skip "required" rules. */
  partial?: boolean;
}

export interface EnvoySchema {
  /** Every problem found, each as `<json path>: <message>`; empty when the value is valid. */
  check(typeName: string, value: unknown, options?: CheckOptions): string[];
  /** Fully qualified message names of every `@type` seen by the last `check` call. */
  readonly typesSeen: ReadonlySet<string>;
}

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return `${typeof value} ${JSON.stringify(value)}`;
}

class Checker implements EnvoySchema {
  private readonly root = new protobuf.Root();
  private readonly loadedFiles = new Set<string>();
  private errors: string[] = [];
  private seen = new Set<string>();
  private partial = false;

  constructor(private readonly includeDirs: readonly string[]) {
    this.root.resolvePath = (_origin: string, target: string) => {
      for (const dir of includeDirs) {
        const candidate = path.join(dir, target);
        if (fs.existsSync(candidate)) return candidate;
      }
      return target; // bundled google/protobuf/*.proto (protobufjs "common")
    };
  }

  get typesSeen(): ReadonlySet<string> {
    return this.seen;
  }

  check(typeName: string, value: unknown, options: CheckOptions = {}): string[] {
    this.errors = [];
    this.seen = new Set();
    this.partial = options.partial === true;
    const type = this.resolveType(typeName);
    if (!type) return [`$: unknown message type ${typeName}`];
    this.message(type, value, '$');
    return this.errors;
  }

  /**
   * Loads, the first time a type is needed, the .proto file of its package folder that declares it.
   * Only that file (and its imports): some folders hold files importing protos grpc-js-xds does not ship.
   */
  private resolveType(fullName: string): protobuf.Type | undefined {
    const found = this.lookup(fullName);
    if (found) return found;
    const parts = fullName.split('.');
    // The package is a prefix of the name; what follows is a message, possibly nested.
    for (let cut = parts.length - 1; cut > 0; cut--) {
      const pkg = parts.slice(0, cut).join('.');
      const outer = parts[cut];
      const rel = parts.slice(0, cut).join('/');
      for (const dir of this.includeDirs) {
        const abs = path.join(dir, rel);
        if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) continue;
        for (const file of fs.readdirSync(abs).filter((f) => f.endsWith('.proto'))) {
          const relFile = path.join(rel, file);
          if (this.loadedFiles.has(relFile)) continue;
          const text = fs.readFileSync(path.join(abs, file), 'utf8');
          const declares = new RegExp(`^package ${pkg.replace(/\./g, '\\.')};`, 'm').test(text) &&
            new RegExp(`^(message|enum) ${outer} \\{`, 'm').test(text);
          if (!declares) continue;
          this.loadedFiles.add(relFile);
          this.root.loadSync(relFile, { keepCase: true });
          this.root.resolveAll();
          const now = this.lookup(fullName);
          if (now) return now;
        }
      }
    }
    return undefined;
  }

  private lookup(fullName: string): protobuf.Type | undefined {
    const found = this.root.lookup(fullName);
    return found instanceof protobuf.Type ? found : undefined;
  }

  private fail(at: string, message: string): void {
    this.errors.push(`${at}: ${message}`);
  }

  private message(type: protobuf.Type, value: unknown, at: string): void {
    const name = type.fullName.replace(/^\./, '');
    if (name === 'google.protobuf.Any') return this.any(value, at);
    if (SPECIAL_JSON.has(name)) return this.wellKnown(name, value, at);
    if (!isPlainObject(value)) return this.fail(at, `expected an object for ${name}, got ${describe(value)}`);

    const byJsonKey = new Map<string, protobuf.Field>();
    for (const field of type.fieldsArray) {
      byJsonKey.set(field.name, field);
      byJsonKey.set(lowerCamel(field.name), field);
      const jsonName = field.options?.['json_name'];
      if (typeof jsonName === 'string') byJsonKey.set(jsonName, field);
    }

    const present = new Set<string>();
    for (const [key, child] of Object.entries(value)) {
      const field = byJsonKey.get(key);
      const where = `${at}.${key}`;
      if (!field) {
        this.fail(where, `unknown field "${key}" of ${name}`);
        continue;
      }
      if (present.has(field.name)) this.fail(where, `field ${field.name} given twice (proto and JSON names)`);
      present.add(field.name);
      if (field.options?.['deprecated'] === true) this.fail(where, `field ${field.name} of ${name} is deprecated`);
      this.field(field, child, where);
    }

    for (const oneof of type.oneofsArray) {
      const set = oneof.oneof.filter((f) => present.has(f));
      if (set.length > 1) this.fail(at, `oneof ${oneof.name} of ${name} has more than one member set: ${set.join(', ')}`);
      if (!this.partial && set.length === 0 && oneof.options?.['(validate.required)'] === true) {
        this.fail(at, `oneof ${oneof.name} of ${name} is required (one of: ${oneof.oneof.join(', ')})`);
      }
    }
    if (!this.partial) {
      for (const field of type.fieldsArray) {
        // Inside a oneof the rule only applies to the member that is set.
        const required = field.options?.['(validate.rules).message.required'] === true && !field.partOf;
        if (required && !present.has(field.name)) {
          this.fail(at, `field ${field.name} of ${name} is required`);
        }
      }
    }
  }

  private field(field: protobuf.Field, value: unknown, at: string): void {
    if (field.map) {
      if (!isPlainObject(value)) return this.fail(at, `expected a map, got ${describe(value)}`);
      const keyType = (field as unknown as protobuf.MapField).keyType;
      for (const [key, child] of Object.entries(value)) {
        if (keyType !== 'string' && !(keyType === 'bool' ? key === 'true' || key === 'false' : INT.test(key))) {
          this.fail(`${at}.${key}`, `map key is not a ${keyType}`);
        }
        this.single(field, child, `${at}.${key}`);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) return this.fail(at, `expected a list, got ${describe(value)}`);
      value.forEach((child, i) => this.single(field, child, `${at}[${i}]`));
      return;
    }
    this.single(field, value, at);
  }

  private single(field: protobuf.Field, value: unknown, at: string): void {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Enum) return this.enumValue(resolved, value, at);
    if (resolved instanceof protobuf.Type) return this.message(resolved, value, at);
    this.scalar(field.type, value, at);
  }

  private enumValue(type: protobuf.Enum, value: unknown, at: string): void {
    if (typeof value === 'string' && Object.prototype.hasOwnProperty.call(type.values, value)) return;
    if (typeof value === 'number' && Object.values(type.values).includes(value)) return;
    this.fail(at, `${describe(value)} is not a value of enum ${type.name} (${Object.keys(type.values).join(', ')})`);
  }

  private scalar(kind: string, value: unknown, at: string): void {
    switch (kind) {
      case 'string':
        if (typeof value !== 'string') this.fail(at, `expected a string, got ${describe(value)}`);
        return;
      case 'bool':
        if (typeof value !== 'boolean') this.fail(at, `expected true or false, got ${describe(value)}`);
        return;
      case 'bytes':
        if (typeof value !== 'string' || !BASE64.test(value)) this.fail(at, `expected base64 bytes, got ${describe(value)}`);
        return;
      case 'double':
      case 'float':
        if (typeof value !== 'number' && !(typeof value === 'string' && /^(NaN|-?Infinity|-?\d+(\.\d+)?([eE][+-]?\d+)?)$/.test(value))) {
          this.fail(at, `expected a number, got ${describe(value)}`);
        }
        return;
      default: {
        // int32, uint32, sint32, fixed32, sfixed32 and their 64-bit forms (64-bit may be strings in JSON).
        const text = typeof value === 'number' ? String(value) : typeof value === 'string' && kind.endsWith('64') ? value : undefined;
        if (text === undefined || !INT.test(text)) return this.fail(at, `expected an integer (${kind}), got ${describe(value)}`);
        if (kind.startsWith('u') || kind.startsWith('fixed')) {
          if (text.startsWith('-')) this.fail(at, `expected a non-negative integer (${kind}), got ${text}`);
        }
        if (kind.endsWith('32') && Math.abs(Number(text)) > 0xffffffff) this.fail(at, `${text} does not fit ${kind}`);
      }
    }
  }

  private wellKnown(name: string, value: unknown, at: string): void {
    switch (name) {
      case 'google.protobuf.Duration':
        if (typeof value !== 'string' || !DURATION.test(value)) {
          this.fail(at, `expected a Duration string like "0.25s" or "5s", got ${describe(value)}`);
        }
        return;
      case 'google.protobuf.Timestamp':
        if (typeof value !== 'string' || !TIMESTAMP.test(value)) this.fail(at, `expected an RFC 3339 timestamp, got ${describe(value)}`);
        return;
      case 'google.protobuf.FieldMask':
        if (typeof value !== 'string') this.fail(at, `expected a field mask string, got ${describe(value)}`);
        return;
      case 'google.protobuf.Struct':
        if (!isPlainObject(value)) this.fail(at, `expected an object (Struct), got ${describe(value)}`);
        return;
      case 'google.protobuf.ListValue':
        if (!Array.isArray(value)) this.fail(at, `expected a list (ListValue), got ${describe(value)}`);
        return;
      case 'google.protobuf.Value':
        return; // any JSON value
      default: {
        const kind = WRAPPERS[name];
        if (kind) this.scalar(kind, value, at);
      }
    }
  }

  private any(value: unknown, at: string): void {
    if (!isPlainObject(value)) return this.fail(at, `expected an object with "@type" (Any), got ${describe(value)}`);
    const typeUrl = value['@type'];
    if (typeof typeUrl !== 'string' || !typeUrl.includes('/')) return this.fail(at, 'Any without a "@type" URL');
    if (!typeUrl.startsWith(TYPE_URL_PREFIX)) this.fail(`${at}.@type`, `type URL should start with ${TYPE_URL_PREFIX}`);
    const typeName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const type = this.resolveType(typeName);
    if (!type) return this.fail(`${at}.@type`, `unknown type ${typeName} (not in Envoy's protos)`);
    this.seen.add(typeName);
    const rest: Record<string, unknown> = { ...value };
    delete rest['@type'];
    if (SPECIAL_JSON.has(typeName)) {
      const keys = Object.keys(rest);
      if (keys.length !== 1 || keys[0] !== 'value') return this.fail(at, `Any of ${typeName} must carry exactly one "value" key`);
      return this.wellKnown(typeName, rest['value'], `${at}.value`);
    }
    if (typeName === 'xds.type.v3.TypedStruct' || typeName === 'udpa.type.v1.TypedStruct') {
      return this.typedStruct(rest, at);
    }
    this.message(type, rest, at);
  }

  /** TypedStruct carries a message as a Struct; check that inner message too. */
  private typedStruct(value: Record<string, unknown>, at: string): void {
    const unknown = Object.keys(value).filter((k) => k !== 'type_url' && k !== 'typeUrl' && k !== 'value');
    for (const key of unknown) this.fail(`${at}.${key}`, `unknown field "${key}" of TypedStruct`);
    const url = value['type_url'] ?? value['typeUrl'];
    if (typeof url !== 'string') return this.fail(at, 'TypedStruct without type_url');
    const inner = url.slice(url.lastIndexOf('/') + 1);
    const type = this.resolveType(inner);
    if (!type) return this.fail(`${at}.type_url`, `unknown type ${inner}`);
    this.seen.add(inner);
    this.message(type, value['value'] ?? {}, `${at}.value`);
  }
}

/** A checker over the same proto folders the server loads (Envoy's protos from @grpc/grpc-js-xds). */
export function loadEnvoySchema(): EnvoySchema {
  return new Checker(PROTO_INCLUDE_DIRS.filter((dir) => fs.existsSync(dir)));
}

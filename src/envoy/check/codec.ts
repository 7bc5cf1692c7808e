import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Protobuf from 'protobufjs';
import { PROTO_FILES, PROTO_INCLUDE_DIRS } from '../protos.js';
import { encodeCheckResponseFast, type CheckResponseObject } from './response-encoder.js';

/**
 * Check's own protobuf codec. proto-loader's generic one converts every message twice: a request is
 * decoded into message instances and then copied by `toObject` with every default filled in, and a
 * response is copied by `fromObject` before it is encoded. On a ~1.7 KB CheckRequest that copying is
 * about half the decode cost and most of the encode cost (bench/hot-path.ts). Check needs neither:
 * `request.ts` reads the decoded instances directly (absent fields read through the prototype's
 * defaults, exactly the values `defaults: true` would have copied), and `response.ts` builds objects
 * that protobufjs' `encode` takes as they are (numeric enums, wire field names).
 *
 * The types come from the same pinned Envoy protos and the same protobufjs instance as proto-loader's
 * (required through proto-loader, which depends on it), so the bytes on the wire are the same; the
 * tests compare them byte for byte with proto-loader's serializer.
 */
const requireFromLoader = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'));

interface CheckTypes {
  request: Protobuf.Type;
  response: Protobuf.Type;
}

let types: CheckTypes | undefined;

function load(): CheckTypes {
  const protobuf = requireFromLoader('protobufjs') as typeof Protobuf;
  const root = new protobuf.Root();
  // The same include-path lookup proto-loader installs (its `includeDirs` option).
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of PROTO_INCLUDE_DIRS) {
      const full = path.join(dir, target);
      try {
        accessSync(full, constants.R_OK);
        return full;
      } catch {
        continue;
      }
    }
    return target;
  };
  // keepCase as in LOADER_OPTIONS: Envoy's snake_case names, which request.ts and response.ts use.
  root.loadSync(PROTO_FILES.authz, { keepCase: true });
  root.resolveAll();
  return {
    request: root.lookupType('envoy.service.auth.v3.CheckRequest'),
    response: root.lookupType('envoy.service.auth.v3.CheckResponse'),
  };
}

/** Loaded on first use (server start), once per process. */
function checkTypes(): CheckTypes {
  types ??= load();
  return types;
}

/**
 * CheckRequest bytes → message instance (not a plain object: unset fields live on the prototype).
 * Throws on bytes that are not a CheckRequest; `withSafeDeserializers` turns that into a deny. Unknown
 * fields are skipped and unknown enum numbers kept as numbers, so newer Envoys are read as before.
 */
export function decodeCheckRequest(buf: Buffer): unknown {
  return checkTypes().request.decode(buf);
}

/**
 * A CheckResponse object as `response.ts` builds it → bytes, by the hand-written encoder; what it does
 * not model is encoded by protobufjs' `encode`. Neither converts: enums must be numbers and Struct
 * values `{ stringValue }`, which is what `decisionToCheckResponse` produces.
 */
export function encodeCheckResponse(res: unknown): Buffer {
  try {
    return encodeCheckResponseFast(res as CheckResponseObject);
  } catch {
    return encodeCheckResponseGeneric(res);
  }
}

/** protobufjs' encoder for the same type (no fromObject copy); the fallback, and the tests' reference. */
export function encodeCheckResponseGeneric(res: unknown): Buffer {
  return checkTypes().response.encode(res as Protobuf.Message).finish() as Buffer;
}

/** Loads the types now, so the first Check does not pay for parsing the protos. */
export function preloadCheckCodec(): void {
  checkTypes();
}

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Envoy's protos come from the pinned `@grpc/grpc-js-xds` package (its `deps/` folder), never from a
 * copy in this repo; the project's own protos live in `proto/`. Loaded once per process.
 */
const require = createRequire(import.meta.url);
const XDS_DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

export const PROTO_INCLUDE_DIRS: readonly string[] = [
  path.join(XDS_DEPS, 'envoy-api'),
  path.join(XDS_DEPS, 'googleapis'),
  path.join(XDS_DEPS, 'xds'),
  path.join(XDS_DEPS, 'protoc-gen-validate'),
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto'),
];

export const PROTO_FILES = {
  authz: 'envoy/service/auth/v3/external_auth.proto',
  extProc: 'envoy/service/ext_proc/v3/external_processor.proto',
  admin: 'meshpep/admin/v1/admin.proto',
} as const;

/**
 * keepCase keeps Envoy's snake_case field names; Google's well-known types (Struct, Duration, ...)
 * still use camelCase because protobufjs ships them pre-parsed. Enums as strings for readability;
 * unknown enum numbers from newer Envoys arrive as numbers and are tolerated by the adapters.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [...PROTO_INCLUDE_DIRS],
};

let cached: protoLoader.PackageDefinition | undefined;

export function packageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([PROTO_FILES.authz, PROTO_FILES.extProc, PROTO_FILES.admin], LOADER_OPTIONS);
  return cached;
}

let health: protoLoader.PackageDefinition | undefined;

/**
 * `grpc.health.v1` as shipped by grpc-health-check (the implementation we serve), for server
 * reflection: a reflection client must find every service on the port.
 */
export function healthPackageDefinition(): protoLoader.PackageDefinition {
  health ??= protoLoader.loadSync(require('grpc-health-check').protoPath as string, LOADER_OPTIONS);
  return health;
}

type ServiceCtor = grpc.ServiceClientConstructor;

function lookup(root: grpc.GrpcObject, dotted: string): ServiceCtor {
  let node: unknown = root;
  for (const part of dotted.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`proto service ${dotted} not found`);
  return node as ServiceCtor;
}

export interface LoadedServices {
  Authorization: ServiceCtor;
  ExternalProcessor: ServiceCtor;
  Admin: ServiceCtor;
}

let services: LoadedServices | undefined;

/** Service constructors: `.service` for servers, `new X(addr, creds)` for clients (tests, CLI). */
export function loadServices(): LoadedServices {
  if (!services) {
    const root = grpc.loadPackageDefinition(packageDefinition());
    services = {
      Authorization: lookup(root, 'envoy.service.auth.v3.Authorization'),
      ExternalProcessor: lookup(root, 'envoy.service.ext_proc.v3.ExternalProcessor'),
      Admin: lookup(root, 'meshpep.admin.v1.Admin'),
    };
  }
  return services;
}

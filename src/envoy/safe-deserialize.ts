import type * as grpc from '@grpc/grpc-js';

/** What a never-throwing deserializer hands the handler for bytes that are not valid protobuf. */
export const UNDECODABLE: unique symbol = Symbol('undecodable message');

/**
 * A copy of a service definition whose request deserializers never throw. grpc-js would otherwise
 * answer INTERNAL before any handler runs; with this the adapter decides (Check: a deny response, as
 * every failure must be; ext_proc: INVALID_ARGUMENT).
 */
export function withSafeDeserializers(base: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(base)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (buf: Buffer) => {
        try {
          return decode(buf);
        } catch {
          return UNDECODABLE;
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

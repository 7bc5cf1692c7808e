/** Agent protocols (MCP, A2A) over JSON-RPC 2.0: the public surface of this core folder. */
export { compileProtocolPolicy, protocolProblems, type ProtocolPolicy, type RawA2a, type RawMcp, type RawToolRule } from './policy.js';
export { ARGUMENT_TYPES, type RawArgumentConstraint } from './arguments.js';
export {
  AGENT_CARD_PATHS,
  filterResponse,
  inspectMetadata,
  inspectRequest,
  maskAgentCardBody,
  type RequestInspection,
  type ResponseFilter,
  summarizeCalls,
  type RpcCall,
  type RpcSummary,
} from './inspect.js';
export { RpcRejected, RPC_POLICY_ERROR, type RpcDenyReason } from './jsonrpc.js';

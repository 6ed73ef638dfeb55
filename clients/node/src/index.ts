export { createTokenClient, DEFAULT_TIMEOUT_MS, type TokenClient, type TokenClientOptions } from "./client.js";
export { type AuthFailure, type FailureKind, type Principal } from "./auth.js";
export { parseBearer, BearerSyntaxError, MAX_TOKEN_LENGTH } from "./bearer.js";
export {
  getPrincipal,
  requireToken,
  requireTokenMiddleware,
  type AuthenticatedRequest,
  type MiddlewareOptions,
  type WarnLogger,
} from "./middleware.js";
export * from "./gen/tokens/v1/token_service_pb.js";

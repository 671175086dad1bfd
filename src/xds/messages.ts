/** The DiscoveryRequest / DiscoveryResponse shapes the stream logic works with (transport-free). */
export interface DiscoveryRequestIn {
  versionInfo: string;
  node?: { id: string; metadata?: Record<string, unknown> };
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

export interface DiscoveryResponseOut {
  versionInfo: string;
  resources: Array<{ typeUrl: string; value: Uint8Array }>;
  typeUrl: string;
  nonce: string;
}

/** gRPC status codes used at the stream boundary (the only place they appear). */
export const GRPC_STATUS = { INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, UNAUTHENTICATED: 16, INTERNAL: 13 } as const;

export interface StreamTransport {
  send(response: DiscoveryResponseOut): void;
  /** Ends the stream with a gRPC status. */
  fail(code: number, message: string): void;
}

export interface DeltaRequestIn {
  node?: { id: string; metadata?: Record<string, unknown> };
  typeUrl: string;
  resourceNamesSubscribe: string[];
  resourceNamesUnsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

export interface DeltaResponseOut {
  systemVersionInfo: string;
  resources: Array<{ name: string; version: string; resource: { typeUrl: string; value: Uint8Array } }>;
  typeUrl: string;
  removedResources: string[];
  nonce: string;
}

export interface DeltaTransport {
  send(response: DeltaResponseOut): void;
  fail(code: number, message: string): void;
}

// The implementation lives in src/ because the demo command needs it at runtime.
export * from '../../src/demo/dns-server';

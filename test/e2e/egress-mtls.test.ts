// The foundation's end-to-end suite with xDS over mTLS: the real Envoy presents its SPIFFE
// certificate, the control plane verifies it and binds the node id to it.
import { egressSuite } from './egress-suite';

egressSuite('delta', { mtls: true });

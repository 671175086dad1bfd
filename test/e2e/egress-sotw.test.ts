// The foundation's end-to-end suite over xDS sotw (issue: all four protocol variants).
import { egressSuite } from './egress-suite';

egressSuite('sotw');

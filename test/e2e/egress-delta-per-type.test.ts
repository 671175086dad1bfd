// The foundation's end-to-end suite over xDS delta-per-type (issue: all four protocol variants).
import { egressSuite } from './egress-suite';

egressSuite('delta-per-type');

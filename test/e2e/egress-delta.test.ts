// The foundation's end-to-end suite over xDS delta (issue: all four protocol variants).
import { egressSuite } from './egress-suite';

egressSuite('delta');

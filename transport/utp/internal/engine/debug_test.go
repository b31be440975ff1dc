package engine

import "fmt"

func (c *Conn) debugString() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("state=%d err=%v q=%d sent=%d inflight=%d lost=%d sndUna=%d sndNxt=%d rcvNxt=%d ooo=%d rq=%d cwnd=%d peerWnd=%d backoff=%d rto=%v srtt=%v rtoBase=%v timerAt=%v persist=%v pace=%v force=%d",
		c.state, c.err, len(c.q), c.sent, c.inflight, c.lostPending, c.sndUna, c.sndNxt, c.rcvNxt, len(c.ooo), c.rqBytes, c.cc.CongestionWindow(), c.peerWnd, c.backoff, c.rto(), c.rtt.SmoothedRTT(), c.rtoBase, c.timerAt, c.persistAt, c.paceAt, c.forceSend)
}

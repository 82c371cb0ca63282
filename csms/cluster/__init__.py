"""Several `csms serve` nodes behind one balancer, sharing what a single process keeps in
memory through Redis: which node holds which station (presence), calls to a station held by
another node (routing) and live events. Stores stay the source of truth; Redis only ever
holds what may be lost and rebuilt (a presence expires, a call times out)."""

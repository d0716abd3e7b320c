// Placeholder until mqnamesrv lands.

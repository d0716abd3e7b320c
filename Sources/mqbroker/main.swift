// Placeholder until mqbroker lands.

// Placeholder until the interop client/server lands.

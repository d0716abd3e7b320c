// Placeholder so the target builds until the runtime lands; replaced by the RocketRPC work.
public enum RocketRPCPlaceholder {}

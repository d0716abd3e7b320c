// Placeholder so the target builds until the store lands.
public enum RocketMQStorePlaceholder {}

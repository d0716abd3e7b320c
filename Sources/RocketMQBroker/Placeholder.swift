// Placeholder until the broker lands.
public enum RocketMQBrokerPlaceholder {}

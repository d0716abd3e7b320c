// Placeholder until the NameServer lands.
public enum RocketMQNameServerPlaceholder {}

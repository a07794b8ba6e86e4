"""Put the user's own face into a generated scene: detect, describe, draw, swap, restore."""

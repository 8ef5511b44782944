"""Engine interface, registry and the region pipeline shared by every engine."""

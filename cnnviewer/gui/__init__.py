"""The Qt window: browser, preview, predictions, compare view, dialogs."""

package ssekit

import "time"

// NotificationEvent returns a "notification" event with the notification's
// kind (as "type"), title, message and timestamp, and extra merged into the
// data.
func NotificationEvent(kind, title, message string, extra map[string]any) Event {
	data := map[string]any{"type": kind, "title": title, "message": message, "timestamp": time.Now().UTC()}
	for k, v := range extra {
		data[k] = v
	}
	return Event{Type: "notification", Data: data}
}

// BadgeUpdateEvent returns a "badge_update" event with the unread count.
func BadgeUpdateEvent(count int) Event {
	return Event{Type: "badge_update", Data: map[string]any{"count": count, "timestamp": time.Now().UTC()}}
}

// NewItemEvent returns a "new_item" event for a feed: the item's kind, id
// and the item itself.
func NewItemEvent(kind, id string, item any) Event {
	return Event{Type: "new_item", Data: map[string]any{"item_type": kind, "item_id": id, "item": item, "timestamp": time.Now().UTC()}}
}

package harness

import (
	"context"
	"fmt"

	"github.com/navidrome/navidrome/plugins/host"
)

// switchboard implements every host service Navidrome's bindings are
// registered over by forwarding to the fakes of the harness whose call is in
// flight (harnessOf), after applying the service-level fault of the host call
// (faultOf): FaultError makes the service fail, so Navidrome's binding answers
// {"error":"…"} and nothing is done; FaultEmpty and FaultGarbage make the
// value-returning services answer a well-formed response carrying an empty or
// a garbage value (Navidrome's bindings always marshal valid JSON, so this is
// the only way to get bad values to the plugin through its real wire path).
type switchboard struct{}

// configBoard is the switchboard of the Config service (its GetInt clashes
// with the cache's).
type configBoard struct{}

var (
	_ host.ConfigService      = configBoard{}
	_ host.SchedulerService   = switchboard{}
	_ host.WebSocketService   = switchboard{}
	_ host.ArtworkService     = switchboard{}
	_ host.CacheService       = switchboard{}
	_ host.UsersService       = switchboard{}
	_ host.HTTPService        = switchboard{}
	_ host.SubsonicAPIService = switchboard{}
)

// Garbage values answered under FaultGarbage.
const (
	GarbageText        = "\x00garbage {\"[ 1 \\u00 - 4 \xff"
	GarbageURL         = "garbage:// not a url \x7f"
	GarbageContentType = "text/html\r\nX-Injected: 1"
)

var garbageBody = []byte("\xff\xfe{\"urls\":[[[\"\x00 not json")

// injected is the error every failing service returns.
func injected(ctx context.Context, fn string) error {
	return fmt.Errorf("harness: injected fault in %s (host call #%d)", fn, harnessOf(ctx).hostCallN())
}

func failed(ctx context.Context, fn string) error {
	if faultOf(ctx) == FaultError {
		return injected(ctx, fn)
	}
	return nil
}

// Config is never faulted: the plugin reads its configuration through the
// kernel's config_get, not these bindings.
func (configBoard) Get(ctx context.Context, key string) (string, bool) {
	return harnessOf(ctx).Config.Get(ctx, key)
}
func (configBoard) GetInt(ctx context.Context, key string) (int64, bool) {
	return harnessOf(ctx).Config.GetInt(ctx, key)
}
func (configBoard) Keys(ctx context.Context, prefix string) []string {
	return harnessOf(ctx).Config.Keys(ctx, prefix)
}

func (switchboard) ScheduleOneTime(ctx context.Context, delay int32, payload, id string) (string, error) {
	if err := failed(ctx, "scheduler_scheduleonetime"); err != nil {
		return "", err
	}
	return harnessOf(ctx).Sched.ScheduleOneTime(ctx, delay, payload, id)
}
func (switchboard) ScheduleRecurring(ctx context.Context, expr, payload, id string) (string, error) {
	if err := failed(ctx, "scheduler_schedulerecurring"); err != nil {
		return "", err
	}
	return harnessOf(ctx).Sched.ScheduleRecurring(ctx, expr, payload, id)
}
func (switchboard) CancelSchedule(ctx context.Context, id string) error {
	if err := failed(ctx, "scheduler_cancelschedule"); err != nil {
		return err
	}
	return harnessOf(ctx).Sched.CancelSchedule(ctx, id)
}

func (switchboard) Connect(ctx context.Context, url string, headers map[string]string, id string) (string, error) {
	if err := failed(ctx, "websocket_connect"); err != nil {
		return "", err
	}
	return harnessOf(ctx).WS.Connect(ctx, url, headers, id)
}

// A failed write breaks a gorilla connection (its reader fails next, so
// Navidrome calls on_error), and Navidrome's CloseConnection fails only for an
// id the server's close already removed: a faulted send or close drops the
// socket as well.
func (switchboard) SendText(ctx context.Context, id, message string) error {
	if err := failed(ctx, "websocket_sendtext"); err != nil {
		harnessOf(ctx).WS.breakConn(id)
		return fmt.Errorf("failed to send text message: %w", err)
	}
	return harnessOf(ctx).WS.SendText(ctx, id, message)
}
func (switchboard) SendBinary(ctx context.Context, id string, data []byte) error {
	if err := failed(ctx, "websocket_sendbinary"); err != nil {
		harnessOf(ctx).WS.breakConn(id)
		return fmt.Errorf("failed to send binary message: %w", err)
	}
	return harnessOf(ctx).WS.SendBinary(ctx, id, data)
}
func (switchboard) CloseConnection(ctx context.Context, id string, code int32, reason string) error {
	if err := failed(ctx, "websocket_closeconnection"); err != nil {
		harnessOf(ctx).WS.breakConn(id)
		return err
	}
	return harnessOf(ctx).WS.CloseConnection(ctx, id, code, reason)
}

// artworkURL applies the fault to one of the artwork getters.
func artworkURL(ctx context.Context, fn string, get func(*Artwork) (string, error)) (string, error) {
	switch faultOf(ctx) {
	case FaultError:
		return "", injected(ctx, fn)
	case FaultEmpty:
		return "", nil
	case FaultGarbage:
		return GarbageURL, nil
	}
	return get(harnessOf(ctx).Artwork)
}

func (switchboard) GetArtistUrl(ctx context.Context, id string, size int32) (string, error) {
	return artworkURL(ctx, "artwork_getartisturl", func(a *Artwork) (string, error) { return a.GetArtistUrl(ctx, id, size) })
}
func (switchboard) GetAlbumUrl(ctx context.Context, id string, size int32) (string, error) {
	return artworkURL(ctx, "artwork_getalbumurl", func(a *Artwork) (string, error) { return a.GetAlbumUrl(ctx, id, size) })
}
func (switchboard) GetTrackUrl(ctx context.Context, id string, size int32) (string, error) {
	return artworkURL(ctx, "artwork_gettrackurl", func(a *Artwork) (string, error) { return a.GetTrackUrl(ctx, id, size) })
}
func (switchboard) GetPlaylistUrl(ctx context.Context, id string, size int32) (string, error) {
	return artworkURL(ctx, "artwork_getplaylisturl", func(a *Artwork) (string, error) { return a.GetPlaylistUrl(ctx, id, size) })
}

func (switchboard) SetString(ctx context.Context, key, value string, ttl int64) error {
	if err := failed(ctx, "cache_setstring"); err != nil {
		return err
	}
	return harnessOf(ctx).Cache.SetString(ctx, key, value, ttl)
}
func (switchboard) SetInt(ctx context.Context, key string, value, ttl int64) error {
	if err := failed(ctx, "cache_setint"); err != nil {
		return err
	}
	return harnessOf(ctx).Cache.SetInt(ctx, key, value, ttl)
}
func (switchboard) SetFloat(ctx context.Context, key string, value float64, ttl int64) error {
	if err := failed(ctx, "cache_setfloat"); err != nil {
		return err
	}
	return harnessOf(ctx).Cache.SetFloat(ctx, key, value, ttl)
}
func (switchboard) SetBytes(ctx context.Context, key string, value []byte, ttl int64) error {
	if err := failed(ctx, "cache_setbytes"); err != nil {
		return err
	}
	return harnessOf(ctx).Cache.SetBytes(ctx, key, value, ttl)
}
func (switchboard) GetString(ctx context.Context, key string) (string, bool, error) {
	switch faultOf(ctx) {
	case FaultError:
		return "", false, injected(ctx, "cache_getstring")
	case FaultEmpty: // the entry is gone (evicted)
		return "", false, nil
	case FaultGarbage:
		return GarbageText, true, nil
	}
	return harnessOf(ctx).Cache.GetString(ctx, key)
}
func (switchboard) GetInt(ctx context.Context, key string) (int64, bool, error) {
	if err := failed(ctx, "cache_getint"); err != nil {
		return 0, false, err
	}
	return harnessOf(ctx).Cache.GetInt(ctx, key)
}
func (switchboard) GetFloat(ctx context.Context, key string) (float64, bool, error) {
	if err := failed(ctx, "cache_getfloat"); err != nil {
		return 0, false, err
	}
	return harnessOf(ctx).Cache.GetFloat(ctx, key)
}
func (switchboard) GetBytes(ctx context.Context, key string) ([]byte, bool, error) {
	if err := failed(ctx, "cache_getbytes"); err != nil {
		return nil, false, err
	}
	return harnessOf(ctx).Cache.GetBytes(ctx, key)
}
func (switchboard) Has(ctx context.Context, key string) (bool, error) {
	if err := failed(ctx, "cache_has"); err != nil {
		return false, err
	}
	return harnessOf(ctx).Cache.Has(ctx, key)
}
func (switchboard) Remove(ctx context.Context, key string) error {
	if err := failed(ctx, "cache_remove"); err != nil {
		return err
	}
	return harnessOf(ctx).Cache.Remove(ctx, key)
}

func (switchboard) GetUsers(ctx context.Context) ([]host.User, error) {
	if err := failed(ctx, "users_getusers"); err != nil {
		return nil, err
	}
	return harnessOf(ctx).Users.GetUsers(ctx)
}
func (switchboard) GetAdmins(ctx context.Context) ([]host.User, error) {
	if err := failed(ctx, "users_getadmins"); err != nil {
		return nil, err
	}
	return harnessOf(ctx).Users.GetAdmins(ctx)
}

// Send records the request in the HTTP fake even when it is faulted, so leak
// scans see everything the plugin tried to send.
func (switchboard) Send(ctx context.Context, req host.HTTPRequest) (*host.HTTPResponse, error) {
	h := harnessOf(ctx)
	switch faultOf(ctx) {
	case FaultError:
		err := injected(ctx, "http_send")
		h.HTTP.record(req, nil, err)
		return nil, err
	case FaultEmpty:
		resp := &host.HTTPResponse{StatusCode: 200}
		h.HTTP.record(req, resp, nil)
		return resp, nil
	case FaultGarbage:
		resp := &host.HTTPResponse{StatusCode: 200, Body: garbageBody,
			Headers: map[string]string{"Content-Type": "application/json", "Location": GarbageURL, "Retry-After": "-99999999999999999999"}}
		h.HTTP.record(req, resp, nil)
		return resp, nil
	}
	return h.HTTP.Send(ctx, req)
}

func (switchboard) Call(ctx context.Context, uri string) (string, error) {
	if err := failed(ctx, "subsonicapi_call"); err != nil {
		return "", err
	}
	return harnessOf(ctx).Subsonic.Call(ctx, uri)
}
func (switchboard) CallRaw(ctx context.Context, uri string) (string, []byte, error) {
	switch faultOf(ctx) {
	case FaultError:
		return "", nil, injected(ctx, "subsonicapi_callraw")
	case FaultEmpty:
		return "", nil, nil
	case FaultGarbage:
		return GarbageContentType, garbageBody, nil
	}
	return harnessOf(ctx).Subsonic.CallRaw(ctx, uri)
}

package nativesync

import (
	"context"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/replica-policy/replica-policy/pkg/native"
)

// watch starts an informer on each object the Syncer owns or narrows, each selecting one
// name (metadata.name field selector: the rights are pinned to those names, and list/watch
// under resourceNames are allowed only with that selector), and pokes the Syncer on every
// event. It returns once they have synced.
func (s *Syncer) watch(ctx context.Context) error {
	ar := s.client.AdmissionregistrationV1()
	type lw struct {
		kind, name string
		obj        runtime.Object
		list       func(context.Context, metav1.ListOptions) (runtime.Object, error)
		watch      func(context.Context, metav1.ListOptions) (watch.Interface, error)
	}
	sources := []lw{{"MutatingWebhookConfiguration", s.opts.WebhookConfiguration, &admissionregistrationv1.MutatingWebhookConfiguration{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return ar.MutatingWebhookConfigurations().List(ctx, o)
		}, ar.MutatingWebhookConfigurations().Watch}}
	for _, name := range native.Names(s.opts.Compile) {
		for _, r := range resources {
			sources = append(sources, lw{r.kind, name, r.obj,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return r.list(ctx, s, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return r.watch(ctx, s, o) }})
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	var synced []cache.InformerSynced
	stores := map[string]cache.Store{}
	for _, src := range sources {
		selector := fields.OneTermEqualSelector("metadata.name", src.name).String()
		withName := func(o *metav1.ListOptions) { o.FieldSelector = selector }
		store, inf := cache.NewInformerWithOptions(cache.InformerOptions{
			// The client says whether it serves watch-list streams (client-go's fake does not).
			ListerWatcher: cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
				ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
					withName(&o)
					return src.list(ctx, o)
				},
				WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
					withName(&o)
					return src.watch(ctx, o)
				},
			}, s.client),
			ObjectType: src.obj,
			Handler:    handler,
			// A resync re-runs the sync: a safety net for a missed event, at no write.
			ResyncPeriod: 5 * time.Minute,
		})
		go inf.RunWithContext(ctx)
		synced = append(synced, inf.HasSynced)
		stores[src.kind+"/"+src.name] = store
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watching the native policies and webhook configuration %s: caches did not sync", s.opts.WebhookConfiguration)
	}
	s.stores = stores
	return nil
}

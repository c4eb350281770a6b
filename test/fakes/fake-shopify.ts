// The fake Shopify Admin API for tests; the implementation lives in src so `stockline demo` can run it too.

export { sendShopifyWebhook, signShopifyWebhook, startFakeShopify } from '../../src/adapters/channels/shopify/fake-server.js';
export type {
  FakeShopify, FakeShopifyItem, FakeShopifyOptions, FakeShopifyRequest, FakeThrottle, ShopifyWebhookDelivery,
} from '../../src/adapters/channels/shopify/fake-server.js';

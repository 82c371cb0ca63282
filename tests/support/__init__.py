"""Every helper and fake peer the suite shares, in one place.

- `net`: free ports on 127.0.0.1
- `wait`: `eventually()`, the one way a test waits for something it observes to change
- `smtp`: a real SMTP server (aiosmtpd) and its inbox
- `fake_pagarme`: a fake Pagar.me V5 server written from the provider's documentation
- `pagarme`: settings and fixtures pointing the real adapter at that fake
- `gateways`: calling any payment gateway port with test defaults
- `stations`: real OCPP 1.6 charge points (the `ocpp` library's client) over websockets
- `app`: the whole CSMS, built by `web.app.create_app`, on settings in a temp dir
"""

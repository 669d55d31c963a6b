"""The streamer: Binance's user-data and market streams in, AIQT events out (`aiqt streamer`)."""

// Plays an Ogg Opus file into voice-sim through the real @discordjs/voice client.
//
// Input (environment):
//   VOICE_SIM_CONNECTION  JSON of voice-sim's ExpectedClient
//                         ({endpoint, guild_id, channel_id, user_id, session_id, token})
//   VOICE_SIM_OGG         path of the Ogg Opus file to play
//   VOICE_SIM_TIMEOUT_MS  give up after this long (default 60000)
//   VOICE_SIM_LISTEN_USER optional user id whose audio to receive; its Opus frames are printed
//                         (hex) in a `received` line before leaving
// Run with NODE_EXTRA_CA_CERTS=<voice-sim CA PEM>: the client always connects to wss://ENDPOINT?v=8.
// Prints one JSON line per event; exits 0 after the file played and the connection was destroyed.
import { createReadStream } from 'node:fs';
import {
  AudioPlayerStatus,
  EndBehaviorType,
  NoSubscriberBehavior,
  StreamType,
  VoiceConnectionStatus,
  createAudioPlayer,
  createAudioResource,
  entersState,
  joinVoiceChannel,
} from '@discordjs/voice';

const log = (event, extra = {}) => console.log(JSON.stringify({ t: Date.now(), event, ...extra }));
const fail = (why) => {
  log('fail', { why: String(why) });
  process.exit(1);
};

const info = JSON.parse(process.env.VOICE_SIM_CONNECTION ?? fail('VOICE_SIM_CONNECTION is not set'));
const file = process.env.VOICE_SIM_OGG ?? fail('VOICE_SIM_OGG is not set');
const timeout = Number(process.env.VOICE_SIM_TIMEOUT_MS ?? 60000);
setTimeout(() => fail(`timed out after ${timeout} ms`), timeout).unref();

// The main gateway is simulated: answer each op 4 join with the two dispatches voice-sim
// stands for. A leave (channel_id null) gets no answer.
const adapterCreator = (methods) => ({
  sendPayload(payload) {
    log('op4', { channel_id: payload?.d?.channel_id ?? null });
    if (payload?.d?.channel_id) {
      setImmediate(() => {
        methods.onVoiceStateUpdate({
          guild_id: info.guild_id,
          channel_id: info.channel_id,
          user_id: info.user_id,
          session_id: info.session_id,
          deaf: false,
          mute: false,
          self_deaf: false,
          self_mute: false,
          self_video: false,
          suppress: false,
          request_to_speak_timestamp: null,
        });
        methods.onVoiceServerUpdate({ token: info.token, guild_id: info.guild_id, endpoint: info.endpoint });
      });
    }
    return true;
  },
  destroy() {},
});

const connection = joinVoiceChannel({
  channelId: info.channel_id,
  guildId: info.guild_id,
  adapterCreator,
  selfDeaf: false,
  debug: true,
});
// A malformed frame from the server is emitted as `error`; unhandled it would kill the process.
connection.on('error', (error) => log('connection-error', { message: String(error?.message ?? error) }));
connection.on('stateChange', (from, to) => log('state', { from: from.status, to: to.status }));
connection.on('debug', (message) => log('debug', { message }));

try {
  await entersState(connection, VoiceConnectionStatus.Ready, 20000);
} catch (error) {
  fail(`never Ready: ${error}`);
}
log('ready');

// Default behaviour (Pause): while the connection is not Ready (resume, reconnect) the player
// auto-pauses instead of consuming frames into nothing.
// Receive a (simulated) user's audio while playing, if asked.
const listenUser = process.env.VOICE_SIM_LISTEN_USER;
const received = [];
let receivedEnd = Promise.resolve();
if (listenUser) {
  const stream = connection.receiver.subscribe(listenUser, {
    end: { behavior: EndBehaviorType.AfterSilence, duration: 400 },
  });
  stream.on('data', (packet) => received.push(Buffer.from(packet).toString('hex')));
  receivedEnd = new Promise((resolve) => stream.once('end', resolve));
}

const player = createAudioPlayer({ behaviors: { noSubscriber: NoSubscriberBehavior.Pause } });
player.on('error', (error) => fail(`player: ${error.message}`));
player.on('stateChange', (from, to) => log('player', { from: from.status, to: to.status }));
connection.subscribe(player);
const resource = createAudioResource(createReadStream(file), { inputType: StreamType.OggOpus });
player.play(resource);
await entersState(player, AudioPlayerStatus.Playing, 10000).catch((error) => fail(`never Playing: ${error}`));
await entersState(player, AudioPlayerStatus.Idle, timeout).catch((error) => fail(`never Idle: ${error}`));
// Let the trailing silence frames go out before leaving.
await new Promise((resolve) => setTimeout(resolve, 300));
if (listenUser) {
  await Promise.race([receivedEnd, new Promise((resolve) => setTimeout(resolve, 5000))]);
  log('received', { user: listenUser, frames: received });
}
connection.destroy();
log('done');
// Give the close frame a moment, then exit regardless of remaining timers (UDP keepalive).
setTimeout(() => process.exit(0), 200);

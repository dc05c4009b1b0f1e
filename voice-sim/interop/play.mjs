// Plays an Ogg Opus file into voice-sim through the real @discordjs/voice client.
//
// Input (environment):
//   VOICE_SIM_CONNECTION  JSON of voice-sim's ExpectedClient
//                         ({endpoint, guild_id, channel_id, user_id, session_id, token}), or a
//                         JSON array of them: one connection each (distinct guilds), all
//                         playing the file at the same time
//   VOICE_SIM_OGG         path of the Ogg Opus file to play
//   VOICE_SIM_TIMEOUT_MS  give up after this long (default 60000)
//   VOICE_SIM_LISTEN_USER optional user id whose audio the (first) connection receives; its Opus
//                         frames are printed (hex) in a `received` line before leaving
//   VOICE_SIM_DAVE        "1": the call is end-to-end encrypted (DAVE); wait for the first executed
//                         DAVE transition before playing, so that no frame goes out unencrypted
//                         (@discordjs/voice sends plain Opus until its session is keyed)
// Run with NODE_EXTRA_CA_CERTS=<voice-sim CA PEM>: the client always connects to wss://ENDPOINT?v=8.
// Prints one JSON line per event; exits 0 after the file played on every connection and each was
// destroyed.
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

const parsed = JSON.parse(process.env.VOICE_SIM_CONNECTION ?? fail('VOICE_SIM_CONNECTION is not set'));
const infos = Array.isArray(parsed) ? parsed : [parsed];
const file = process.env.VOICE_SIM_OGG ?? fail('VOICE_SIM_OGG is not set');
const timeout = Number(process.env.VOICE_SIM_TIMEOUT_MS ?? 60000);
const listenUser = process.env.VOICE_SIM_LISTEN_USER;
const dave = process.env.VOICE_SIM_DAVE === '1';
setTimeout(() => fail(`timed out after ${timeout} ms`), timeout).unref();

// The main gateway is simulated: answer each op 4 join with the two dispatches voice-sim
// stands for. A leave (channel_id null) gets no answer.
const adapterCreator = (info) => (methods) => ({
  sendPayload(payload) {
    log('op4', { guild: info.guild_id, channel_id: payload?.d?.channel_id ?? null });
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

async function play(info, listen) {
  const guild = info.guild_id;
  const connection = joinVoiceChannel({
    channelId: info.channel_id,
    guildId: guild,
    adapterCreator: adapterCreator(info),
    selfDeaf: false,
    debug: true,
  });
  // A malformed frame from the server is emitted as `error`; unhandled it would kill the process.
  connection.on('error', (error) => log('connection-error', { guild, message: String(error?.message ?? error) }));
  connection.on('stateChange', (from, to) => log('state', { guild, from: from.status, to: to.status }));
  connection.on('debug', (message) => log('debug', { guild, message }));
  // Registered before Ready: the first transition can execute right after it.
  const keyed = new Promise((resolve) => {
    connection.on('transitioned', (transitionId) => {
      log('transitioned', { guild, transitionId, privacyCode: connection.voicePrivacyCode ?? null });
      resolve();
    });
  });

  try {
    await entersState(connection, VoiceConnectionStatus.Ready, 20000);
  } catch (error) {
    fail(`never Ready: ${error}`);
  }
  log('ready', { guild });
  if (dave) {
    await Promise.race([keyed, new Promise((_, reject) => setTimeout(reject, 10000))]).catch(() =>
      fail('no DAVE transition executed within 10 s'),
    );
    log('dave-keyed', { guild, privacyCode: connection.voicePrivacyCode ?? null });
  }

  // Receive a (simulated) user's audio while playing, if asked.
  const received = [];
  let receivedEnd = Promise.resolve();
  if (listen) {
    const stream = connection.receiver.subscribe(listen, {
      end: { behavior: EndBehaviorType.AfterSilence, duration: 400 },
    });
    stream.on('data', (packet) => received.push(Buffer.from(packet).toString('hex')));
    receivedEnd = new Promise((resolve) => stream.once('end', resolve));
  }

  // Default behaviour (Pause): while the connection is not Ready (resume, reconnect) the player
  // auto-pauses instead of consuming frames into nothing.
  const player = createAudioPlayer({ behaviors: { noSubscriber: NoSubscriberBehavior.Pause } });
  player.on('error', (error) => fail(`player: ${error.message}`));
  player.on('stateChange', (from, to) => log('player', { guild, from: from.status, to: to.status }));
  connection.subscribe(player);
  player.play(createAudioResource(createReadStream(file), { inputType: StreamType.OggOpus }));
  await entersState(player, AudioPlayerStatus.Playing, 10000).catch((error) => fail(`never Playing: ${error}`));
  await entersState(player, AudioPlayerStatus.Idle, timeout).catch((error) => fail(`never Idle: ${error}`));
  // Let the trailing silence frames go out before leaving.
  await new Promise((resolve) => setTimeout(resolve, 300));
  if (listen) {
    await Promise.race([receivedEnd, new Promise((resolve) => setTimeout(resolve, 5000))]);
    log('received', { user: listen, frames: received });
  }
  connection.destroy();
  log('done', { guild });
}

await Promise.all(infos.map((info, i) => play(info, i === 0 ? listenUser : undefined)));
// Give the close frames a moment, then exit regardless of remaining timers (UDP keepalive).
setTimeout(() => process.exit(0), 200);

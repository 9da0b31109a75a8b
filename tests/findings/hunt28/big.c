#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>
#include <stdint.h>
#define MB (1024UL*1024)
static unsigned long long rs=88172645463325252ULL;
static unsigned long long rnd(void){rs^=rs<<13;rs^=rs>>7;rs^=rs<<17;return rs;}
static long rss_kb(void){FILE*f=fopen("/proc/self/status","r");char l[256];long v=0;while(fgets(l,256,f))if(!strncmp(l,"VmRSS:",6))v=atol(l+6);fclose(f);return v;}
static void touch(char*p,size_t n,int v){for(size_t i=0;i<n;i+=4096)p[i]=(char)v;}
static unsigned long chk(char*p,size_t n){unsigned long s=0;for(size_t i=0;i<n;i+=4096)s+=(unsigned char)p[i];return s;}
static int mode_thr_iters=200;
static void* thr(void*a){unsigned long long s=(uintptr_t)a*7919+1;unsigned long tot=0;
  for(int i=0;i<mode_thr_iters;i++){s^=s<<13;s^=s>>7;s^=s<<17;size_t n=(16+s%100)*MB;char*p=malloc(n);if(!p)abort();touch(p,n,i);tot+=chk(p,n);free(p);}
  return (void*)tot;}
int main(int argc,char**argv){
  const char*m=argv[1]; int it=argc>2?atoi(argv[2]):50;
  unsigned long res=0;
  if(!strcmp(m,"single")){ // one buffer at a time, varying 16-300MB
    for(int i=0;i<it;i++){size_t n=(16+rnd()%285)*MB;char*p=malloc(n);touch(p,n,i);res+=chk(p,n);free(p);} }
  else if(!strcmp(m,"several")){ // 4 live buffers 50-200MB, replaced
    char*b[4]={0};size_t sz[4]={0};
    for(int i=0;i<it;i++){int k=rnd()%4;free(b[k]);sz[k]=(50+rnd()%151)*MB;b[k]=malloc(sz[k]);touch(b[k],sz[k],i);res+=chk(b[k],sz[k]);}
    for(int k=0;k<4;k++)free(b[k]);}
  else if(!strcmp(m,"mix")){ // many 256K-4M blocks + a few 50-200MB
    enum{N=200};char*s[N]={0};size_t ss[N];char*b[3]={0};
    for(int i=0;i<it*20;i++){int k=rnd()%N;free(s[k]);ss[k]=256*1024+rnd()%(4*MB);s[k]=malloc(ss[k]);touch(s[k],ss[k],i);
      if(i%40==0){int j=rnd()%3;free(b[j]);size_t n=(50+rnd()%151)*MB;b[j]=malloc(n);touch(b[j],n,i);res+=chk(b[j],n);} }
    for(int k=0;k<N;k++)free(s[k]);for(int j=0;j<3;j++)free(b[j]);}
  else if(!strcmp(m,"big_then_small")){ // free 250MB then allocate 250MB of small objects
    for(int r=0;r<it;r++){char*p=malloc(250*MB);touch(p,250*MB,1);res+=chk(p,250*MB);free(p);}
    char**v=malloc(sizeof(char*)*4000000);for(int i=0;i<4000000;i++){v[i]=malloc(64);v[i][0]=i;}
    for(int i=0;i<4000000;i++)res+=v[i][0];for(int i=0;i<4000000;i++)free(v[i]);free(v);}
  else if(!strcmp(m,"big_then_mid")){ // free 250MB then allocate 250MB as 1MB blocks
    for(int r=0;r<it;r++){char*p=malloc(250*MB);touch(p,250*MB,1);free(p);}
    char*v[250];for(int i=0;i<250;i++){v[i]=malloc(MB);touch(v[i],MB,i);}for(int i=0;i<250;i++)free(v[i]);}
  else if(!strcmp(m,"big_then_huge")){ // free 200MB blocks then allocate a 400MB one
    for(int r=0;r<it;r++){char*p=malloc(200*MB);touch(p,200*MB,1);free(p);char*q=malloc(100*MB);touch(q,100*MB,1);free(q);}
    char*p=malloc(400*MB);touch(p,400*MB,2);res+=chk(p,400*MB);free(p);}
  else if(!strcmp(m,"grow_sizes")){ // increasing sizes, each freed: 17,34,...MB
    for(int i=1;i<=it;i++){size_t n=i*17*MB;if(n>1000*MB)break;char*p=malloc(n);touch(p,n,i);res+=chk(p,n);free(p);} }
  else if(!strcmp(m,"realloc_grow")){ // realloc growth by 1.5x to 600MB, it times
    for(int r=0;r<it;r++){size_t n=1*MB;char*p=malloc(n);memset(p,r,n);while(n<600*MB){size_t nn=n+n/2;p=realloc(p,nn);memset(p+n,r,nn-n);n=nn;}
      res+=chk(p,n);for(size_t i=0;i<n;i+=4096)if(p[i]!=(char)r){printf("CORRUPT\n");return 1;} free(p);} }
  else if(!strcmp(m,"realloc_small_steps")){ // grow by 64KB steps to 400MB
    size_t n=64*1024;char*p=malloc(n);memset(p,7,n);while(n<400*MB){size_t nn=n+64*1024;p=realloc(p,nn);memset(p+n,(int)(n>>16),nn-n);n=nn;}
    for(size_t i=0;i<n;i+=64*1024)if(p[i]!=(i<64*1024?7:(char)(i>>16))){printf("CORRUPT at %zu\n",i);return 1;} free(p);}
  else if(!strcmp(m,"realloc_two")){ // two buffers growing alternately (mremap adjacency)
    size_t n=MB;char*a=malloc(n),*b=malloc(n);memset(a,1,n);memset(b,2,n);
    while(n<300*MB){size_t nn=n+3*MB;a=realloc(a,nn);memset(a+n,1,nn-n);b=realloc(b,nn);memset(b+n,2,nn-n);n=nn;}
    for(size_t i=0;i<n;i+=4096)if(a[i]!=1||b[i]!=2){printf("CORRUPT\n");return 1;} free(a);free(b);}
  else if(!strcmp(m,"realloc_shrink")){ // grow to 300MB then shrink to 1MB, then grow again, repeat
    for(int r=0;r<it;r++){size_t n=MB;char*p=malloc(n);memset(p,r,n);while(n<300*MB){size_t nn=n*2;p=realloc(p,nn);memset(p+n,r,nn-n);n=nn;}
      p=realloc(p,20*MB);p=realloc(p,2*MB);p=realloc(p,300*1024);
      for(size_t i=0;i<300*1024;i+=4096)if(p[i]!=(char)r){printf("CORRUPT\n");return 1;} free(p);} }
  else if(!strcmp(m,"calloc_sparse")){ for(int i=0;i<it;i++){size_t n=(50+rnd()%200)*MB;char*p=calloc(1,n);for(size_t j=0;j<n;j+=MB)if(p[j])return 3; p[0]=1;p[n-1]=1;free(p);} }
  else if(!strcmp(m,"calloc_full")){ for(int i=0;i<it;i++){size_t n=(50+rnd()%200)*MB;char*p=calloc(1,n);for(size_t j=0;j<n;j+=4096){if(p[j]){printf("NONZERO\n");return 3;}p[j]=1;}free(p);} }
  else if(!strcmp(m,"calloc_reuse")){ // malloc+dirty then calloc same size must be zero
    for(int i=0;i<it;i++){size_t n=(20+rnd()%200)*MB;char*p=malloc(n);memset(p,0xAB,n);free(p);char*q=calloc(1,n);for(size_t j=0;j<n;j+=512)if(q[j]){printf("NONZERO %d %zu\n",i,j);return 3;}free(q);} }
  else if(!strcmp(m,"memalign")){ size_t al[]={4096,65536,2*MB,64*MB,256*MB};
    for(int i=0;i<it;i++){size_t a=al[rnd()%5];size_t n=(16+rnd()%200)*MB;void*p=NULL;if(posix_memalign(&p,a,n)){printf("FAIL\n");return 1;}
      if((uintptr_t)p%a){printf("MISALIGNED\n");return 1;}touch(p,n,1);free(p);
      char*q=aligned_alloc(a,n);if((uintptr_t)q%a){printf("MISALIGNED2\n");return 1;}touch(q,n/2,1);free(q);} }
  else if(!strcmp(m,"threads")){ int nt=argc>3?atoi(argv[3]):4;mode_thr_iters=it;pthread_t t[8];for(int i=0;i<nt;i++)pthread_create(&t[i],0,thr,(void*)(uintptr_t)i);
    for(int i=0;i<nt;i++){void*r;pthread_join(t[i],&r);res+=(unsigned long)r;} }
  else if(!strcmp(m,"trim")){ char*b[6];for(int i=0;i<6;i++){b[i]=malloc((30+i*30)*MB);touch(b[i],(30+i*30)*MB,1);}
    for(int i=0;i<6;i++)free(b[i]);long r1=rss_kb();malloc_trim(0);long r2=rss_kb();fprintf(stdout,"rss_before_trim_MB=%ld after=%ld\n",r1/1024,r2/1024);
    char*p=malloc(5*MB);touch(p,5*MB,1);free(p);sleep(0);return 0;}
  else if(!strcmp(m,"free_rss")){ // rss after freeing everything (no trim)
    char*b[6];for(int i=0;i<6;i++){b[i]=malloc((30+i*30)*MB);touch(b[i],(30+i*30)*MB,1);}
    for(int i=0;i<6;i++)free(b[i]);printf("rss_after_free_MB=%ld\n",rss_kb()/1024);return 0;}
  else if(!strcmp(m,"fork")){ char*b[3];for(int i=0;i<3;i++){b[i]=malloc(100*MB);touch(b[i],100*MB,i+1);}free(b[1]);
    for(int k=0;k<it;k++){pid_t pid=fork();if(!pid){char*q=malloc(150*MB);touch(q,150*MB,9);free(b[0]);char*r=malloc(60*MB);touch(r,60*MB,3);
      if(b[2][0]!=3){_exit(5);} free(q);free(r);_exit(0);}int st;waitpid(pid,&st,0);if(!WIFEXITED(st)||WEXITSTATUS(st)){printf("CHILD FAIL %d\n",st);return 1;}}
    res=chk(b[0],100*MB)+chk(b[2],100*MB);free(b[0]);free(b[2]);}
  else if(!strcmp(m,"boundary")){ size_t sz[]={256*MB-4096,256*MB,256*MB+1,256*MB+4096,16*MB-1,16*MB,16*MB+1,1024*MB-4096,1024*MB,1024*MB+1,256*1024,256*1024+1};
    for(int r=0;r<it;r++)for(int i=0;i<12;i++){char*p=malloc(sz[i]);p[0]=1;p[sz[i]-1]=2;memset(p+sz[i]/2,3,4096);res+=p[0]+p[sz[i]-1];p=realloc(p,sz[i]*2);if(p[0]!=1||p[sz[i]-1]!=2){printf("CORRUPT %d\n",i);return 1;}free(p);} }
  else if(!strcmp(m,"frag")){ // fill with 200MB blocks, free every other, allocate 250MB ones
    char*b[10];for(int i=0;i<10;i++){b[i]=malloc(200*MB);touch(b[i],200*MB,1);}
    for(int i=0;i<10;i+=2)free(b[i]);
    for(int i=0;i<10;i+=2){b[i]=malloc(250*MB);touch(b[i],250*MB,1);}
    for(int i=0;i<10;i++)free(b[i]);}
  else {printf("unknown\n");return 2;}
  printf("ok %lu\n",res);return 0;}
